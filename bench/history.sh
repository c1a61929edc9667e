#!/usr/bin/env bash
# Years of history (issue 18): a database of RUNS runs over 20 services (3 targets x 5 phases
# of steps, LINES log lines, 6 events and deliveries each: 1,000,000 runs make 15M steps, 50M
# lines, about 7.5 GB; bench/history_fill.py writes it straight into SQLite, a few minutes)
# against one of 100 runs, each served by a release rollgate twice: with its 20 services, and
# with one more configured service that never deployed (whose "last good version" finds
# nothing). Every read the page, the API and monitoring make, median of 15, side by side; then the first retention pass (keep_runs: KEEP) over the big one, with
# the page, a deploy and /healthz asked every second while it runs, and the file after.
#   bash bench/history.sh        (RUNS=1000000 LINES=50 KEEP=1000; RUNS=100000 for a quicker look)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-1000000}; LINES=${LINES:-50}
KEEP=${KEEP:-$(( RUNS / 40 < 1000 ? RUNS / 40 : 1000 ))}   # per service: at least half of each service's runs go
OUT=bench/out/history; rm -rf "$OUT"; mkdir -p "$OUT"
BIN=${BIN:-.build/release/rollgate}; [ -x "$BIN" ] || { echo "build first: make release"; exit 1; }
. bench/lib.sh
export ROLLGATE_MIGRATIONS=migrations ROLLGATE_PUBLIC_DIR=public
TOKEN=bench-token-0123456789
PID=""
trap '[ -n "$PID" ] && kill -9 $PID 2>/dev/null || true' EXIT

config() { # DB PORT RETENTION FRESH(with|without)
  {
    echo "listen: 127.0.0.1:$2"
    echo "public_read: true"
    echo "database: $1"
    echo "api_tokens: [{name: bench, token: \"$TOKEN\"}]"
    echo "retention: ${3:-{keep_runs: all, keep_logs: all\}}"
    echo "services:"
    for n in $(seq -w 1 20); do echo "  - {name: svc$n, simulated: {targets: 3}, hooks: {deploy: 'true'}}"; done
    [ "${4:-with}" = without ] || echo "  - {name: fresh, simulated: {targets: 3, drain_seconds: 0.1, healthy_seconds: 0.1}, hooks: {deploy: 'true'}}"
  } > "$OUT/rollgate-$2.yaml"
  echo "$OUT/rollgate-$2.yaml"
}
serve() { # DB RETENTION FRESH -> sets PID, PORT
  PORT=$(free_port)
  "$BIN" serve --config "$(config "$1" "$PORT" "$2" "${3:-with}")" > "$OUT/serve-$PORT.log" 2>&1 & PID=$!
  for _ in $(seq 600); do curl -s "http://127.0.0.1:$PORT/healthz" >/dev/null && return 0; sleep 0.1; done
  echo "rollgate did not start: $(tail -5 "$OUT/serve-$PORT.log")"; exit 1
}

machine
for size in small big; do
  runs=$([ $size = small ] && echo 100 || echo "$RUNS")
  "$BIN" migrate --database "$OUT/$size.db" > /dev/null
  started=$(date +%s)
  python3 bench/history_fill.py "$OUT/$size.db" "$runs" "$LINES" 20
  echo "$size: $runs runs filled in $(( $(date +%s) - started )) s, $(du -m "$OUT/$size.db" | cut -f1) MB"
  for fresh in with without; do
    serve "$OUT/$size.db" "" "$fresh"
    echo "  $fresh a never-deployed service: rss after start $(rss_kb "$PID") kB"
    python3 bench/history_measure.py reads "http://127.0.0.1:$PORT" "$OUT/$size-$fresh.json" $([ $size = big ] && echo "$OUT/small-$fresh.json")
    echo "  rss after the reads: $(rss_kb "$PID") kB"
    kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
  done
done
for fresh in with without; do
python3 - "$OUT/small-$fresh.json" "$OUT/big-$fresh.json" "$RUNS" "$fresh" <<'EOF'
import json, sys
small, big = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
sizes, small, big = small["sizes"], small["times"], big["times"]
print("\n%s a never-deployed service:" % sys.argv[4])
print("%-36s %10s %14s %7s  %s" % ("read (median of 15)", "100 runs", "%s runs" % sys.argv[3], "ratio", "runs a page"))
worst = 0
for name in small:
    ratio = big[name] / max(small[name], 0.5)
    worst = max(worst, ratio)
    print("%-36s %8.1f ms %11.1f ms %6.2fx  %s" % (name, small[name], big[name], ratio, sizes.get(name, "")))
print("worst ratio: %.2fx (target: every figure within 2x)" % worst)
EOF
done

serve "$OUT/big.db" "{keep_runs: $KEEP, keep_logs: all}"
python3 bench/history_measure.py pass "http://127.0.0.1:$PORT" "$TOKEN" "$OUT/big.db" "$OUT/serve-$PORT.log"
grep "pruned\|compacted" "$OUT/serve-$PORT.log" | tail -2
kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
python3 - "$OUT/big.db" <<'EOF'
import os, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
pages, free, size = (db.execute("PRAGMA %s" % p).fetchone()[0] for p in ("page_count", "freelist_count", "page_size"))
runs = db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
print("after the pass: %d runs, file %.0f MB, %.0f%% free pages, auto_vacuum=%d, WAL %.0f MB" % (
    runs, os.path.getsize(sys.argv[1]) / 1e6, 100.0 * free / max(pages, 1), db.execute("PRAGMA auto_vacuum").fetchone()[0],
    os.path.getsize(sys.argv[1] + "-wal") / 1e6 if os.path.exists(sys.argv[1] + "-wal") else 0))
EOF
