#!/usr/bin/env bash
# rollgate's HTTP path against a minimal C libmicrohttpd server doing the same SQLite
# point read, side by side in one run: req/s, p99 latency, RSS, and the ratio.
#   make bench            (builds release, installs wrk, runs this)
#   bash bench/http.sh    (expects .build/release/rollgate; DURATION=10 CONNECTIONS=32 THREADS=2)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-2}
BIN=.build/release/rollgate
OUT=bench/out
mkdir -p "$OUT"
[ -x "$BIN" ] || { echo "build first: make release (or make bench)"; exit 1; }
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk (or make bench)"; exit 1; }
cc -O2 -o "$OUT/cserver" bench/cserver.c -lmicrohttpd -lsqlite3

. bench/lib.sh

DB="$OUT/bench.db"
rm -f "$DB" "$DB-wal" "$DB-shm"
"$BIN" migrate --database "$DB" --migrations migrations >/dev/null
# One finished run with 9 steps, as a demo roll leaves it.
python3 - "$DB" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
t = 1_800_000_000_000
db.execute("INSERT INTO runs (service, version, reason, requested_by, status, created_at, started_at, finished_at) VALUES ('demo','v2','bench','demo','succeeded',?,?,?)", (t, t + 5, t + 20000))
i = 0
for target in ("demo-1", "demo-2", "demo-3"):
    for phase in ("drain", "deploy", "restore"):
        db.execute("INSERT INTO steps (run_id, target_id, target_port, phase, status, started_at, finished_at) VALUES (1,?,8080,?,'succeeded',?,?)", (target, phase, t + i * 1000, t + i * 1000 + 900))
        i += 1
db.commit()
PY

RPORT=$(free_port); CPORT=$(free_port)
cat > "$OUT/bench.yaml" <<YAML
listen: 127.0.0.1:$RPORT
database: $DB
services:
  - name: demo
    simulated: {targets: 3}
    hooks: {deploy: "true"}
YAML
"$BIN" serve --config "$OUT/bench.yaml" --migrations migrations >"$OUT/rollgate.log" 2>&1 &
RPID=$!
"$OUT/cserver" "$CPORT" "$DB" >"$OUT/cserver.log" 2>&1 &
CPID=$!
trap 'kill $RPID $CPID 2>/dev/null || true' EXIT
for port in $RPORT $CPORT; do
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
done
curl -sf "http://127.0.0.1:$RPORT/api/v1/runs/1" >"$OUT/rollgate-run.json"
curl -sf "http://127.0.0.1:$CPORT/api/v1/runs/1" >"$OUT/cserver-run.json"
# Same work, same answer: the comparison only means something if the bodies are identical.
cmp -s "$OUT/rollgate-run.json" "$OUT/cserver-run.json" || { echo "the two servers answer differently:"; diff "$OUT/rollgate-run.json" "$OUT/cserver-run.json"; exit 1; }
R_IDLE=$(rss_kb $RPID); C_IDLE=$(rss_kb $CPID)

measure() { # name port path -> "reqs p99ms"
  wrk_measure "http://127.0.0.1:$2$3" "$OUT/wrk-$1-$(echo "$3" | tr '/' '_').txt"
}

machine
echo "command: wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s --latency, $ROUNDS alternating rounds, best of each"
printf '%-22s %-10s %12s %10s\n' endpoint server req/s p99_ms
for path in /api/v1/runs/1 /healthz; do
  best_r=0; best_c=0; p99_r=0; p99_c=0
  for _ in $(seq "$ROUNDS"); do
    read -r rr rp < <(measure rollgate "$RPORT" "$path")
    read -r cr cp < <(measure cserver "$CPORT" "$path")
    if awk "BEGIN{exit !($rr > $best_r)}"; then best_r=$rr; p99_r=$rp; fi
    if awk "BEGIN{exit !($cr > $best_c)}"; then best_c=$cr; p99_c=$cp; fi
  done
  printf '%-22s %-10s %12s %10s\n' "$path" rollgate "$best_r" "$p99_r"
  printf '%-22s %-10s %12s %10s\n' "$path" c-mhd "$best_c" "$p99_c"
  target=0.8; [ "$path" = /healthz ] && target=0.9
  awk -v a="$best_r" -v b="$best_c" -v p="$path" -v t="$target" 'BEGIN {printf "%-22s ratio rollgate/c: %.2fx (target >= %sx)\n", p, a/b, t}'
done
R_LOAD=$(rss_kb $RPID); C_LOAD=$(rss_kb $CPID)
echo "RSS idle:        rollgate $((R_IDLE / 1024)) MB, c-mhd $((C_IDLE / 1024)) MB (target rollgate <= 25 MB)"
echo "RSS after load:  rollgate $((R_LOAD / 1024)) MB, c-mhd $((C_LOAD / 1024)) MB"
