#!/usr/bin/env bash
# Many services rolling at once on one AWS account (issue 18): moto_server behind
# Tests/RollgateTests/Support/elb_timing_proxy.py modelling ELB's Describe* bucket (40 tokens,
# refilled at 10 a second, as the ELB guide documents) with real drain and health times;
# SERVICES services of TARGETS targets each, poll_interval 500ms, rolled by one release
# rollgate with its default AWS call budget. First one service alone, then all at once.
# Reports: runs succeeded, Describe calls sent and throttled, the peak calls in one second,
# the wave's duration against one service alone, rollgate's CPU and RSS.
#   bash bench/many-rolls.sh        (SERVICES=20 TARGETS=2 DRAIN=3 HEALTHY=2 BUDGET=4 CHANGES=2)
set -euo pipefail
cd "$(dirname "$0")/.."
SERVICES=${SERVICES:-20}; TARGETS=${TARGETS:-2}; DRAIN=${DRAIN:-3}; HEALTHY=${HEALTHY:-2}; BUDGET=${BUDGET:-4}; CHANGES=${CHANGES:-2}
OUT=bench/out/many-rolls; rm -rf "$OUT"; mkdir -p "$OUT"
BIN=.build/release/rollgate; [ -x "$BIN" ] || { echo "build first: make release"; exit 1; }
. bench/lib.sh
wait_http() { for _ in $(seq 100); do curl -s "http://127.0.0.1:$1/$2" >/dev/null && return 0; sleep 0.2; done; echo "port $1 did not answer"; exit 1; }
PIDFILE="$OUT/pids"; : > "$PIDFILE"
trap 'kill -9 $(cat "$PIDFILE") 2>/dev/null || true' EXIT
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1
TOKEN=bench-token-0123456789

MOTO=$(free_port); PROXY=$(free_port); PORT=$(free_port)
python3 -m moto.server -H 127.0.0.1 -p "$MOTO" >/dev/null 2>&1 & echo $! >> "$PIDFILE"
wait_http "$MOTO" moto-api/
{
  echo "listen: 127.0.0.1:$PORT"
  echo "public_read: true   # the benchmark reads without a token"
  echo "database: $OUT/rollgate.db"
  echo "api_tokens: [{name: bench, token: \"$TOKEN\"}]"
  echo "rate_limit: {writes_per_second: 100, burst: 500}   # one token sends every service's deploy"
  echo "aws: {region: us-east-1, endpoint_url: http://127.0.0.1:$PROXY, describe_per_second: $BUDGET, changes_per_second: $CHANGES}"
  echo "services:"
  for n in $(seq 1 "$SERVICES"); do
    python3 Tests/RollgateTests/Support/moto_fixture.py "http://127.0.0.1:$MOTO" "$TARGETS" "svc$n" > "$OUT/svc$n.json"
    arn=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["target_group_arn"])' "$OUT/svc$n.json")
    echo "  - {name: svc$n, target_group_arn: $arn, poll_interval: 500ms, drain_timeout: 120s, healthy_timeout: 120s, hooks: {deploy: 'sleep 0.5'}}"
  done
} > "$OUT/rollgate.yaml"
python3 Tests/RollgateTests/Support/elb_timing_proxy.py --moto "http://127.0.0.1:$MOTO" --port "$PROXY" \
  --drain "$DRAIN" --healthy "$HEALTHY" --describe-bucket 40 --describe-refill 10 --events "$OUT/events.jsonl" --seed 1 >/dev/null 2>&1 & echo $! >> "$PIDFILE"
wait_http "$PROXY" moto-api/
ROLLGATE_MIGRATIONS=migrations "$BIN" serve --config "$OUT/rollgate.yaml" > "$OUT/rollgate.log" 2>&1 & SERVER=$!; echo $SERVER >> "$PIDFILE"
wait_http "$PORT" healthz

deploy() {
  local status
  status=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $TOKEN" -d "{\"service\":\"$1\",\"version\":\"$2\"}" "http://127.0.0.1:$PORT/api/v1/deploys")
  [ "$status" = 202 ] || { echo "deploy $1 $2 answered $status"; exit 1; }
}
wait_all() { # version -> seconds until every run of that version ended
  python3 - "$PORT" "$1" "$SERVICES" <<'PY'
import json, sys, time, urllib.request
port, version, services = sys.argv[1], sys.argv[2], int(sys.argv[3])
start = time.time()
while True:
    runs = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/runs?limit=200"))["runs"]
    mine = [r for r in runs if r["version"] == version]
    if len(mine) >= services and all(r["status"] not in ("queued", "running") for r in mine):
        print(json.dumps({"seconds": time.time() - start, "statuses": [r["status"] for r in mine]}))
        break
    time.sleep(0.2)
PY
}
summary() { # from_time to_time -> "calls throttled peak"
  python3 - "$OUT/events.jsonl" "$1" "$2" <<'PY'
import json, sys, collections
path, t0, t1 = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
calls = throttled = 0; per_second = collections.Counter()
for line in open(path):
    e = json.loads(line)
    if not (t0 <= e["at"] <= t1): continue
    if e["event"] == "call" and e["target"].startswith("Describe"):
        calls += 1; per_second[int(e["at"])] += 1
    if e["event"] == "throttled": throttled += 1
print(calls, throttled, max(per_second.values() or [0]))
PY
}

machine
echo "command: SERVICES=$SERVICES TARGETS=$TARGETS DRAIN=$DRAIN HEALTHY=$HEALTHY BUDGET=$BUDGET CHANGES=$CHANGES bash bench/many-rolls.sh"
t0=$(date +%s.%N); deploy svc1 v2; alone=$(SERVICES=1 wait_all v2); t1=$(date +%s.%N)
read -r c1 th1 pk1 <<< "$(summary "$t0" "$t1")"
cpu0=$(cpu_ticks $SERVER)
t2=$(date +%s.%N); for n in $(seq 1 "$SERVICES"); do deploy "svc$n" v3; done
sleep 1; rss=$(rss_kb $SERVER); wave=$(wait_all v3); t3=$(date +%s.%N)
cpu1=$(cpu_ticks $SERVER)
read -r c2 th2 pk2 <<< "$(summary "$t2" "$t3")"
python3 - "$alone" "$wave" "$c1" "$th1" "$pk1" "$c2" "$th2" "$pk2" "$rss" "$cpu0" "$cpu1" "$(getconf CLK_TCK)" "$SERVICES" <<'PY'
import json, sys
alone, wave = json.loads(sys.argv[1]), json.loads(sys.argv[2])
c1, th1, pk1, c2, th2, pk2, rss, cpu0, cpu1, tck, services = map(float, sys.argv[3:])
ok = sum(1 for s in wave["statuses"] if s == "succeeded")
print(f"one service alone: {alone['seconds']:.1f} s, {int(c1)} Describe calls, {int(th1)} throttled, peak {int(pk1)}/s")
print(f"{int(services)} at once: {wave['seconds']:.1f} s ({wave['seconds'] / alone['seconds']:.2f}x one alone), "
      f"{ok} of {len(wave['statuses'])} runs succeeded, {int(c2)} Describe calls, {int(th2)} throttled "
      f"({100 * th2 / max(1, c2):.1f}%), peak {int(pk2)}/s against a refill of 10/s")
print(f"rollgate: RSS {rss / 1024:.1f} MB during the wave, CPU {(cpu1 - cpu0) / tck:.2f} s for the wave")
PY
