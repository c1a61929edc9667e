#!/usr/bin/env bash
# rollgate's HTTP path against a minimal C libmicrohttpd server doing the same SQLite
# point read, side by side in one run: req/s, p99 latency, server CPU per request, RSS, and
# the ratio. A second C server (c-held) reads the old way, leaving its read transaction open
# between requests (see bench/cserver.c): shown for comparison, not the target's baseline.
#   make bench            (builds release, installs wrk, runs this)
#   bash bench/http.sh    (expects .build/release/rollgate; DURATION=10 CONNECTIONS=32 THREADS=2)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
BIN=.build/release/rollgate
OUT=bench/out
mkdir -p "$OUT"
[ -x "$BIN" ] || { echo "build first: make release (or make bench)"; exit 1; }
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk (or make bench)"; exit 1; }
cc -O2 -o "$OUT/cserver" bench/cserver.c -lmicrohttpd -lsqlite3
cc -O2 -DLEAVE_READ_OPEN -o "$OUT/cserver-held" bench/cserver.c -lmicrohttpd -lsqlite3

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

RPORT=$(free_port); CPORT=$(free_port); HPORT=$(free_port)
cat > "$OUT/bench.yaml" <<YAML
listen: 127.0.0.1:$RPORT
public_read: true   # the benchmark reads without a token, as it did before reads were closed
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
"$OUT/cserver-held" "$HPORT" "$DB" >"$OUT/cserver-held.log" 2>&1 &
HPID=$!
trap 'kill $RPID $CPID $HPID 2>/dev/null || true' EXIT
for port in $RPORT $CPORT $HPORT; do
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
done
curl -sf "http://127.0.0.1:$RPORT/api/v1/runs/1" >"$OUT/rollgate-run.json"
curl -sf "http://127.0.0.1:$CPORT/api/v1/runs/1" >"$OUT/cserver-run.json"
# Same work, same answer: the comparison only means something if the bodies are identical.
cmp -s "$OUT/rollgate-run.json" "$OUT/cserver-run.json" || { echo "the two servers answer differently:"; diff "$OUT/rollgate-run.json" "$OUT/cserver-run.json"; exit 1; }
R_IDLE=$(rss_kb $RPID); C_IDLE=$(rss_kb $CPID)

measure() { # name port path pid -> "req/s p99ms cpu_us_per_request"
  local before after rps p99
  before=$(cpu_ticks "$4")
  read -r rps p99 < <(wrk_measure "http://127.0.0.1:$2$3" "$OUT/wrk-$1-$(echo "$3" | tr '/' '_').txt")
  after=$(cpu_ticks "$4")
  echo "$rps $p99 $(cpu_us_per_request "$before" "$after" "$(awk -v r="$rps" -v d="$DURATION" 'BEGIN {print r * d}')")"
}

machine
echo "command: wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s --latency, $ROUNDS alternating rounds, best req/s of each"
echo "(cpu_us: the server's own CPU per request, user + system, in the round with the best req/s)"
printf '%-22s %-10s %12s %10s %8s\n' endpoint server req/s p99_ms cpu_us
declare -A best p99 cpu
for path in /api/v1/runs/1 /healthz; do
  for name in rollgate c-mhd c-held; do best[$name]=0; done
  for _ in $(seq "$ROUNDS"); do
    for name in rollgate c-mhd c-held; do
      case $name in rollgate) port=$RPORT pid=$RPID ;; c-mhd) port=$CPORT pid=$CPID ;; c-held) port=$HPORT pid=$HPID ;; esac
      read -r r p c < <(measure "$name" "$port" "$path" "$pid")
      if awk "BEGIN{exit !($r > ${best[$name]})}"; then best[$name]=$r; p99[$name]=$p; cpu[$name]=$c; fi
    done
  done
  for name in rollgate c-mhd c-held; do
    printf '%-22s %-10s %12s %10s %8s\n' "$path" "$name" "${best[$name]}" "${p99[$name]}" "${cpu[$name]}"
  done
  target=0.8; [ "$path" = /healthz ] && target=0.9
  awk -v a="${best[rollgate]}" -v b="${best[c-mhd]}" -v h="${best[c-held]}" -v p="$path" -v t="$target" \
    'BEGIN {printf "%-22s ratio rollgate/c-mhd: %.2fx (target >= %sx); rollgate/c-held: %.2fx\n", p, a/b, t, a/h}'
done
R_LOAD=$(rss_kb $RPID); C_LOAD=$(rss_kb $CPID)
mb() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
echo "RSS idle:        rollgate $(mb "$R_IDLE") MB, c-mhd $(mb "$C_IDLE") MB (target rollgate <= 25 MB)"
echo "RSS after load:  rollgate $(mb "$R_LOAD") MB, c-mhd $(mb "$C_LOAD") MB (target rollgate <= 40 MB)"
