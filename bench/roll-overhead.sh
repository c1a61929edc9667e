#!/usr/bin/env bash
# The roll's own overhead: 10 targets on the simulated load balancer with fixed times (drain
# DRAIN s, a deploy hook of HOOK s, health pass HEALTH s), the run's total time against the
# sum of those times. What is left over is rollgate: waiter lag (up to a poll each wait),
# hooks forked through /bin/sh, the store's writes.
#   bash bench/roll-overhead.sh    (expects .build/release/rollgate; TARGETS=10 DRAIN=3 HOOK=3 HEALTH=3 POLL=100ms)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
TARGETS=${TARGETS:-10}; DRAIN=${DRAIN:-3}; HOOK=${HOOK:-3}; HEALTH=${HEALTH:-3}; POLL=${POLL:-100ms}
BIN=.build/release/rollgate
OUT=bench/out/roll-overhead
rm -rf "$OUT"; mkdir -p "$OUT"
[ -x "$BIN" ] || { echo "build first: make release (or make bench)"; exit 1; }
PORT=$(free_port)
TOKEN=bench-token-0123456789abcdef
cat > "$OUT/overhead.yaml" <<YAML
listen: 127.0.0.1:$PORT
public_read: true   # the benchmark reads without a token, as it did before reads were closed
database: $OUT/overhead.db
api_tokens: [{name: bench, token: $TOKEN}]
services:
  - name: demo
    simulated: {targets: $TARGETS, drain_seconds: $DRAIN, healthy_seconds: $HEALTH}
    poll_interval: $POLL
    hooks: {deploy: "sleep $HOOK"}
YAML
"$BIN" serve --config "$OUT/overhead.yaml" --migrations migrations >"$OUT/rollgate.log" 2>&1 &
RPID=$!
trap 'kill $RPID 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
machine
echo "command: TARGETS=$TARGETS DRAIN=$DRAIN HOOK=$HOOK HEALTH=$HEALTH POLL=$POLL bash bench/roll-overhead.sh"
curl -sf -X POST -H "Authorization: Bearer $TOKEN" -d '{"service":"demo","version":"v2"}' "http://127.0.0.1:$PORT/api/v1/deploys" >/dev/null
for _ in $(seq 3000); do
  status=$(curl -sf "http://127.0.0.1:$PORT/api/v1/runs/1" | python3 -c 'import json, sys; print(json.load(sys.stdin)["status"])')
  [ "$status" != queued ] && [ "$status" != running ] && break
  sleep 0.2
done
curl -sf "http://127.0.0.1:$PORT/api/v1/runs/1" | python3 -c '
import json, sys, datetime
targets, drain, hook, health = (float(x) for x in sys.argv[1:5])
run = json.load(sys.stdin)
t = lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
total = t(run["finished_at"]) - t(run["started_at"])
ideal = targets * (drain + hook + health)
status = run["status"]
print(f"run {status}: {total:.2f} s for {int(targets)} targets; the fixed times sum to {ideal:.2f} s")
for phase, fixed in (("drain", drain), ("deploy", hook), ("restore", health)):
    took = [t(s["finished_at"]) - t(s["started_at"]) for s in run["steps"] if s["phase"] == phase]
    print(f"  {phase:8} fixed {fixed:.2f} s, took mean {sum(took)/len(took):.3f} s, max {max(took):.3f} s")
print(f"ratio: {total / ideal:.4f}x (target <= 1.02x)")
' "$TARGETS" "$DRAIN" "$HOOK" "$HEALTH"
