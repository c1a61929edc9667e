#!/usr/bin/env bash
# Keeps answering under abuse: 2,000 half-open connections from one address and 200 busy
# clients from another, while a third client times /healthz and GET /api/v1/runs/1. Twice:
# with rollgate's limits (the defaults) and with them opened up (what it was before issue
# 10), loopback only, bounded in time. Then a dribble (issue 16): 4,200 connections from 20
# addresses (210 each, under connections_per_address), each sending its request a byte every
# 5 s and opening again when cut, with the default limits (max_connections 4096,
# request_timeout 30s): before issue 16 they held every slot and /healthz answered 0 of 6.
#   bash bench/abuse.sh    (expects .build/release/rollgate; SECONDS_EACH=10 HALF_OPEN=2000 BUSY=200 DRIBBLE=4200)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
SECONDS_EACH=${SECONDS_EACH:-10}
HALF_OPEN=${HALF_OPEN:-2000}
BUSY=${BUSY:-200}
DRIBBLE=${DRIBBLE:-4200}
BIN=.build/release/rollgate
OUT=bench/out/abuse
rm -rf "$OUT"; mkdir -p "$OUT"
[ -x "$BIN" ] || { echo "build first: make release (or make bench)"; exit 1; }
ulimit -n 16384 2>/dev/null || ulimit -n "$(ulimit -Hn)"

machine
echo "command: $HALF_OPEN half-open from 127.0.0.2, $BUSY busy from 127.0.0.3, a probe from 127.0.0.4, ${SECONDS_EACH}s each"
for mode in limits-on limits-off dribble; do
  PORT=$(free_port)
  case $mode in
    limits-on) http="{}" ;;
    limits-off) http="{connections_per_address: 1000000, idle_timeout: 60s, max_connections: 1024}" ;;
    dribble) http="{}" ;;
  esac
  cat > "$OUT/$mode.yaml" <<YAML
listen: 127.0.0.1:$PORT
database: $OUT/$mode.db
api_tokens: [{name: bench, token: bench-token-0123456789abcdef}]
public_read: true   # the probe reads a run without a token
http: $http
services:
  - name: demo
    simulated: {targets: 3, drain_seconds: 0.2, healthy_seconds: 0.2}
    poll_interval: 100ms
    hooks: {deploy: "true"}
YAML
  "$BIN" serve --config "$OUT/$mode.yaml" --migrations migrations >"$OUT/$mode.log" 2>&1 &
  RPID=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
  curl -sf -X POST -H 'Authorization: Bearer bench-token-0123456789abcdef' -d '{"service":"demo","version":"v2"}' \
    "http://127.0.0.1:$PORT/api/v1/deploys" >/dev/null
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/api/v1/runs/1" | grep -q '"status":"succeeded"' && break; sleep 0.1; done
  echo "== $mode: http: $http"
  python3 bench/abuse_clients.py probe "$PORT" 3 | sed 's/^/quiet:  /'
  case $mode in
    limits-*)
      python3 bench/abuse_clients.py hog "$PORT" "$HALF_OPEN" > "$OUT/$mode-hog.txt" &
      HOG=$!
      python3 bench/abuse_clients.py busy "$PORT" "$BUSY" &
      BUSYPID=$!
      sleep 3 ;;   # let the abuse build up
    dribble)
      python3 bench/abuse_clients.py dribble "$PORT" "$DRIBBLE" > "$OUT/$mode-hog.txt" &
      HOG=$!
      BUSYPID=""
      sleep 10 ;;  # every dribbler connected, the slots full
  esac
  python3 bench/abuse_clients.py probe "$PORT" "$SECONDS_EACH" | sed 's/^/abused: /'
  echo "RSS under abuse: $(( $(rss_kb $RPID) / 1024 )) MB"
  kill -TERM $HOG $BUSYPID; wait $HOG $BUSYPID 2>/dev/null || true
  cat "$OUT/$mode-hog.txt"
  kill $RPID; wait $RPID 2>/dev/null || true
done
echo "target (issue 10): with the limits, /healthz and GET /api/v1/runs/1 p99 <= 100 ms from the third client"
echo "target (issue 16): under the dribble, /healthz keeps answering"
