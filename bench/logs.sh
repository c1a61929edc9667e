#!/usr/bin/env bash
# Hook output stored per second: one deploy hook printing LINES lines, then 4 at once (a batch
# of max_unavailable: 4), against Python's sqlite3 (C) inserting the same rows into the same
# schema in the same batches (500 a transaction, WAL, synchronous=NORMAL); and GET
# /api/v1/runs/1 with wrk while the 4 hooks print, against the same with nothing printing.
#   bash bench/logs.sh    (expects .build/release/rollgate; LINES=300000 DURATION=5)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
LINES=${LINES:-300000}
DURATION=${DURATION:-5}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-32}
BIN=.build/release/rollgate
OUT=bench/out/logs
rm -rf "$OUT"; mkdir -p "$OUT"
[ -x "$BIN" ] || { echo "build first: make release (or make bench)"; exit 1; }
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk (or make bench)"; exit 1; }
TOKEN=bench-token-0123456789abcdef
machine
echo "command: LINES=$LINES bash bench/logs.sh"

# Lines per second of a run's deploy steps: all their lines over first start to last end.
rate() { # port run
  curl -sf "http://127.0.0.1:$1/api/v1/runs/$2" | python3 -c '
import json, sys, datetime
run = json.load(sys.stdin)
deploys = [s for s in run["steps"] if s["phase"] == "deploy"]
t = lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
span = max(t(s["finished_at"]) for s in deploys) - min(t(s["started_at"]) for s in deploys)
print(f"{len(deploys)} {span:.3f}")'
}

for targets in 1 4; do
  PORT=$(free_port)
  cat > "$OUT/logs-$targets.yaml" <<YAML
listen: 127.0.0.1:$PORT
public_read: true   # the benchmark reads without a token, as it did before reads were closed
database: $OUT/logs-$targets.db
api_tokens: [{name: bench, token: $TOKEN}]
services:
  - name: demo
    simulated: {targets: $targets, drain_seconds: 0.1, healthy_seconds: 0.1}
    poll_interval: 100ms
    max_unavailable: $targets
    hooks: {deploy: "seq 1 $LINES"}
YAML
  "$BIN" serve --config "$OUT/logs-$targets.yaml" --migrations migrations >"$OUT/rollgate-$targets.log" 2>&1 &
  RPID=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
  deploy() { curl -sf -X POST -H "Authorization: Bearer $TOKEN" -d "{\"service\":\"demo\",\"version\":\"$1\"}" "http://127.0.0.1:$PORT/api/v1/deploys" >/dev/null; }
  status() { curl -sf "http://127.0.0.1:$PORT/api/v1/runs/$1" | python3 -c 'import json, sys; print(json.load(sys.stdin)["status"])'; }
  wait_done() { for _ in $(seq 1200); do [ "$(status "$1")" = succeeded ] && return; sleep 0.1; done; echo "run $1 did not finish"; exit 1; }
  deploy v1; wait_done 1
  read -r hooks span < <(rate "$PORT" 1)
  stored=$(sqlite3 "$OUT/logs-$targets.db" "SELECT COUNT(*) FROM log_lines WHERE run_id = 1 AND stream = 'stdout'" 2>/dev/null || echo "?")
  awk -v n="$LINES" -v h="$hooks" -v s="$span" -v st="$stored" 'BEGIN {printf "rollgate, %d hook(s) x %d lines: %.0f lines/s stored (%d stored, in %.2f s)\n", h, n, n*h/s, st, s}'
  if [ "$targets" = 4 ]; then
    read -r idle_rps idle_p99 < <(wrk_measure "http://127.0.0.1:$PORT/api/v1/runs/1" "$OUT/wrk-idle.txt")
    deploy v2
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/api/v1/runs/2" | grep -q '"phase":"deploy"' && break; sleep 0.05; done
    read -r flood_rps flood_p99 < <(wrk_measure "http://127.0.0.1:$PORT/api/v1/runs/1" "$OUT/wrk-flood.txt")
    wait_done 2
    echo "GET /api/v1/runs/1: $idle_rps req/s idle (p99 $idle_p99 ms), $flood_rps req/s while 4 hooks print (p99 $flood_p99 ms)"
    awk -v a="$flood_rps" -v b="$idle_rps" 'BEGIN {printf "ratio during the flood: %.2fx (target >= 0.5x)\n", a/b}'
  fi
  kill $RPID; wait $RPID 2>/dev/null || true
done

# The baseline: the same rows, the same batches, from C (Python's sqlite3 module), into the
# same table: rollgate's own schema (its CHECKs, index and foreign key), foreign keys on.
rm -f "$OUT/baseline.db"
"$BIN" migrate --database "$OUT/baseline.db" --migrations migrations >/dev/null
python3 - "$OUT/baseline.db" "$LINES" <<'PY'
import sqlite3, sys, time
path, lines = sys.argv[1], int(sys.argv[2])
db = sqlite3.connect(path, isolation_level=None)
db.execute("PRAGMA journal_mode=WAL"); db.execute("PRAGMA synchronous=NORMAL"); db.execute("PRAGMA foreign_keys=ON")
db.execute("INSERT INTO runs (service, version, requested_by, status, created_at) VALUES ('demo', 'v1', 'bench', 'queued', 0)")
start = time.perf_counter()
for first in range(0, lines, 500):
    db.execute("BEGIN IMMEDIATE")
    db.executemany("INSERT INTO log_lines (run_id, at, stream, target_id, phase, text) VALUES (?, ?, ?, ?, ?, ?)",
                   [(1, 1800000000000, "stdout", "demo-1", "deploy", str(i)) for i in range(first + 1, min(first + 501, lines + 1))])
    db.execute("COMMIT")
took = time.perf_counter() - start
print(f"baseline, sqlite3 from C, batches of 500: {lines / took:.0f} rows/s ({lines} in {took:.2f} s)")
PY
echo "target (issue 10): at least 100,000 lines/s from one hook and from 4 at once, every line stored in order"
