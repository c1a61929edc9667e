#!/usr/bin/env bash
# Live streams under load: N clients follow one running run's log (Server-Sent Events)
# while wrk drives GET /api/v1/runs/{id}; the request rate with the streams open against
# the rate with none, side by side in alternating rounds, and the server's RSS.
#   make bench            (builds release, installs wrk, runs this)
#   bash bench/streams.sh (expects .build/release/rollgate; STREAMS=500 DURATION=10 ROUNDS=2)
set -euo pipefail
cd "$(dirname "$0")/.."
STREAMS=${STREAMS:-500}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-2}
BIN=.build/release/rollgate
OUT=bench/out/streams
rm -rf "$OUT"; mkdir -p "$OUT"
[ -x "$BIN" ] || { echo "build first: make release (or make bench)"; exit 1; }
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk (or make bench)"; exit 1; }
ulimit -n 8192 2>/dev/null || true

. bench/lib.sh

PORT=$(free_port)
# One run that stays running for the whole benchmark: its first target drains for an hour,
# and the waiter writes a log line each poll (every 200 ms) for the streams to carry.
cat > "$OUT/streams.yaml" <<YAML
listen: 127.0.0.1:$PORT
public_read: true   # the benchmark reads without a token, as it did before reads were closed
database: $OUT/streams.db
api_tokens: [{name: bench, token: bench-token-0123456789abcdef}]
http: {connections_per_address: 4096}   # every client of this benchmark is 127.0.0.1
services:
  - name: demo
    simulated: {targets: 3, drain_seconds: 3600, healthy_seconds: 1}
    poll_interval: 200ms
    drain_timeout: 2h
    hooks: {deploy: "true"}
YAML
"$BIN" serve --config "$OUT/streams.yaml" --migrations migrations >"$OUT/rollgate.log" 2>&1 &
RPID=$!
CLIENTS=""
trap 'kill $RPID $CLIENTS 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
curl -sf -X POST -H 'Authorization: Bearer bench-token-0123456789abcdef' -d '{"service":"demo","version":"v2"}' \
  "http://127.0.0.1:$PORT/api/v1/deploys" >/dev/null
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/api/v1/runs/1" | grep -q '"status":"running"' && break; sleep 0.1; done
R_IDLE=$(rss_kb $RPID)

measure() { # none|open -> "reqs p99ms"
  wrk_measure "http://127.0.0.1:$PORT/api/v1/runs/1" "$OUT/wrk-$1.txt"
}

machine
echo "command: wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s --latency GET /api/v1/runs/1, with 0 and $STREAMS log streams open, $ROUNDS alternating rounds, best of each"
best_none=0; best_open=0; p99_none=0; p99_open=0; rss_open=0
for round in $(seq "$ROUNDS"); do
  read -r r p < <(measure none)
  if awk "BEGIN{exit !($r > $best_none)}"; then best_none=$r; p99_none=$p; fi
  python3 bench/sse_clients.py 127.0.0.1 "$PORT" /api/v1/runs/1/logs "$STREAMS" >"$OUT/clients-$round.txt" 2>&1 &
  CLIENTS=$!
  for _ in $(seq 300); do
    open=$(curl -sf "http://127.0.0.1:$PORT/metrics" | awk '/^rollgate_open_streams / {print int($2)}')
    [ "${open:-0}" -ge "$STREAMS" ] && break; sleep 0.1
  done
  echo "round $round: $open streams open"
  read -r r p < <(measure open)
  if awk "BEGIN{exit !($r > $best_open)}"; then best_open=$r; p99_open=$p; fi
  rss=$(rss_kb $RPID); [ "$rss" -gt "$rss_open" ] && rss_open=$rss
  kill -TERM $CLIENTS; wait $CLIENTS 2>/dev/null || true; CLIENTS=""
  cat "$OUT/clients-$round.txt"
  for _ in $(seq 100); do
    open=$(curl -sf "http://127.0.0.1:$PORT/metrics" | awk '/^rollgate_open_streams / {print int($2)}')
    [ "${open:-1}" -eq 0 ] && break; sleep 0.1
  done
  echo "round $round: streams closed, $open still open on the server"
done
printf '%-26s %12s %10s\n' "GET /api/v1/runs/1" req/s p99_ms
printf '%-26s %12s %10s\n' "no streams" "$best_none" "$p99_none"
printf '%-26s %12s %10s\n' "$STREAMS log streams open" "$best_open" "$p99_open"
awk -v a="$best_open" -v b="$best_none" 'BEGIN {printf "ratio with/without streams: %.2fx (target >= 0.8x)\n", a/b}'
echo "RSS: idle $((R_IDLE / 1024)) MB, with $STREAMS streams $((rss_open / 1024)) MB (target <= 60 MB)"
