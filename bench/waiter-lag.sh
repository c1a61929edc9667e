#!/usr/bin/env bash
# How late does rollgate notice a target's state change, against the AWS CLI waiters, on
# the same load balancer? moto_server behind Tests/RollgateTests/Support/elb_timing_proxy.py
# (drains and health checks that take real time, 10% of requests throttled), both sides
# side by side in one run. Lag = the time from the state change (as the proxy modelled it)
# to the next action: the deploy hook's start after a drain, the next DeregisterTargets
# after a health pass (for the CLI: the waiter returning).
#   bash bench/waiter-lag.sh        (INSTANCES=4 DRAIN=3 HEALTHY=2 THROTTLE=0.1 CLI_INSTANCES=2)
set -euo pipefail
cd "$(dirname "$0")/.."
INSTANCES=${INSTANCES:-4}; CLI_INSTANCES=${CLI_INSTANCES:-2}
DRAIN=${DRAIN:-3}; HEALTHY=${HEALTHY:-2}; THROTTLE=${THROTTLE:-0.1}
OUT=bench/out/waiter-lag; rm -rf "$OUT"; mkdir -p "$OUT"
BIN=.build/release/rollgate; [ -x "$BIN" ] || BIN=.build/debug/rollgate
[ -x "$BIN" ] || { echo "build first: make release"; exit 1; }
command -v aws >/dev/null || { echo "the AWS CLI is missing: pip install awscli"; exit 1; }
. bench/lib.sh
wait_http() { for _ in $(seq 100); do curl -s "http://127.0.0.1:$1/$2" >/dev/null && return 0; sleep 0.2; done; echo "port $1 did not answer"; exit 1; }
# Every process started is written down here: setup runs in a subshell ($(...)), so a
# shell array would lose them.
PIDFILE="$OUT/pids"; : > "$PIDFILE"
trap 'kill -9 $(cat "$PIDFILE") 2>/dev/null || true' EXIT
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1

setup() { # name instances -> prints proxy port; writes $OUT/$name.fixture.json
  local name=$1 count=$2 moto proxy
  moto=$(free_port); proxy=$(free_port)
  python3 -m moto.server -H 127.0.0.1 -p "$moto" >/dev/null 2>&1 & echo $! >> "$PIDFILE"
  wait_http "$moto" moto-api/
  python3 Tests/RollgateTests/Support/moto_fixture.py "http://127.0.0.1:$moto" "$count" > "$OUT/$name.fixture.json"
  python3 Tests/RollgateTests/Support/elb_timing_proxy.py --moto "http://127.0.0.1:$moto" --port "$proxy" \
    --drain "$DRAIN" --healthy "$HEALTHY" --throttle "$THROTTLE" --events "$OUT/$name.events.jsonl" --seed 1 >/dev/null 2>&1 & echo $! >> "$PIDFILE"
  wait_http "$proxy" moto-api/
  echo "$proxy"
}
arn_of() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["target_group_arn"])' "$OUT/$1.fixture.json"; }

# rollgate, poll_interval 500ms
PROXY=$(setup rollgate "$INSTANCES"); PORT=$(free_port)
cat > "$OUT/rollgate.yaml" <<YAML
listen: 127.0.0.1:$PORT
public_read: true   # the benchmark reads without a token, as it did before reads were closed
database: $OUT/rollgate.db
api_tokens: [{name: bench, token: "bench-token-0123456789"}]
aws: {region: us-east-1, endpoint_url: http://127.0.0.1:$PROXY}
services:
  - name: web
    target_group_arn: $(arn_of rollgate)
    poll_interval: 500ms
    hooks: {deploy: 'python3 -c "import time; print(time.time())" > $OUT/hook-\$ROLLGATE_TARGET_ID'}
YAML
ROLLGATE_MIGRATIONS=migrations "$BIN" serve --config "$OUT/rollgate.yaml" > "$OUT/rollgate.log" 2>&1 & echo $! >> "$PIDFILE"
wait_http "$PORT" healthz
"$BIN" deploy web v2 --follow --server "http://127.0.0.1:$PORT" --token bench-token-0123456789 > "$OUT/deploy.log" 2>&1 || true
grep -q "run 1 succeeded" "$OUT/deploy.log" || { echo "the rollgate run did not succeed:"; tail -5 "$OUT/deploy.log"; exit 1; }

# The AWS CLI script: deregister, wait target-deregistered, register, wait target-in-service.
PROXY=$(setup cli "$CLI_INSTANCES")
ARN=$(arn_of cli)
for id in $(python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))["instances"]))' "$OUT/cli.fixture.json"); do
  aws --endpoint-url "http://127.0.0.1:$PROXY" elbv2 deregister-targets --target-group-arn "$ARN" --targets "Id=$id,Port=8080"
  aws --endpoint-url "http://127.0.0.1:$PROXY" elbv2 wait target-deregistered --target-group-arn "$ARN" --targets "Id=$id,Port=8080"
  python3 -c "import time; print(time.time())" > "$OUT/cli-drained-$id"
  aws --endpoint-url "http://127.0.0.1:$PROXY" elbv2 register-targets --target-group-arn "$ARN" --targets "Id=$id,Port=8080"
  aws --endpoint-url "http://127.0.0.1:$PROXY" elbv2 wait target-in-service --target-group-arn "$ARN" --targets "Id=$id,Port=8080"
  python3 -c "import time; print(time.time())" > "$OUT/cli-healthy-$id"
done

python3 - "$OUT" "$DRAIN" "$HEALTHY" "$THROTTLE" <<'PY'
import json, os, statistics, sys
out, drain, healthy, throttle = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
def events(name):
    return [json.loads(l) for l in open(f"{out}/{name}.events.jsonl")]
def first(evs, kind, target, after=0):
    return next(e["at"] for e in evs if e["event"] == kind and e["target"] == target and e["at"] >= after)
def stats(lags):
    return f"p50 {statistics.median(lags):6.2f} s   max {max(lags):6.2f} s   (n={len(lags)})"
ev = events("rollgate")
order = [e["target"] for e in ev if e["event"] == "deregistered"]
drain_lags = [float(open(f"{out}/hook-{t}").read()) - first(ev, "drained", t) for t in order]
health_lags = [first(ev, "deregistered", n) - first(ev, "healthy", t) for t, n in zip(order, order[1:])]
cev = events("cli")
corder = [e["target"] for e in cev if e["event"] == "deregistered"]
cli_drain = [float(open(f"{out}/cli-drained-{t}").read()) - first(cev, "drained", t) for t in corder]
cli_health = [float(open(f"{out}/cli-healthy-{t}").read()) - first(cev, "healthy", t) for t in corder]
print(f"fixture: moto behind elb_timing_proxy.py, drain {drain} s, health check {healthy} s, {float(throttle)*100:.0f}% throttled")
print(f"rollgate (poll_interval 500ms), drain ended -> deploy hook started:    {stats(drain_lags)}")
print(f"rollgate (poll_interval 500ms), healthy -> next target deregistered:  {stats(health_lags)}")
print(f"aws elbv2 wait target-deregistered, drain ended -> waiter returned:     {stats(cli_drain)}")
print(f"aws elbv2 wait target-in-service, healthy -> waiter returned:           {stats(cli_health)}")
print("target (issue 3): rollgate p50 <= 0.5 s, max <= 1.5 s")
PY
