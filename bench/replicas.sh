#!/usr/bin/env bash
# Several replicas on one PostgreSQL (issue 19): a cluster of its own (initdb into bench/out,
# a free loopback port; as the postgres user through setpriv when run as root), REPLICAS
# release rollgates on it, simulated services. Measures, all in bench/replicas.py:
#   - claims: DEPLOYS deploys of SERVICES services posted at once across the replicas: runs a
#     second, and whether any run ended twice or two runs of one service overlapped;
#   - takeover: kill -9 of the replica holding a run in its deploy hook, until another holds
#     it (target: the lease + one poll);
#   - a run read (GET /api/v1/runs/ID) on a replica against the same read on a SQLite rollgate;
#   - a log line printed by a hook on one replica until it arrives on a stream at another.
#   bash bench/replicas.sh        (REPLICAS=3 SERVICES=10 DEPLOYS=100 LEASE=3)
set -euo pipefail
cd "$(dirname "$0")/.."
REPLICAS=${REPLICAS:-3}; SERVICES=${SERVICES:-10}; DEPLOYS=${DEPLOYS:-100}; LEASE=${LEASE:-3}
OUT=$(pwd)/bench/out/replicas; rm -rf "$OUT"; mkdir -p "$OUT"
BIN=$(pwd)/.build/release/rollgate; [ -x "$BIN" ] || { echo "build first: make release"; exit 1; }
. bench/lib.sh
export ROLLGATE_MIGRATIONS=$(pwd)/migrations
PIDFILE="$OUT/pids"; : > "$PIDFILE"
trap 'kill -9 $(cat "$PIDFILE") 2>/dev/null || true' EXIT

PGBIN=$(pg_config --bindir 2>/dev/null || ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
AS=(); if [ "$(id -u)" = 0 ]; then AS=(setpriv --reuid=postgres --regid=postgres --init-groups --); chown postgres "$OUT"; fi
PGPORT=$(free_port)
"${AS[@]}" "$PGBIN/initdb" -D "$OUT/pg" -U rollgate -A trust -E UTF8 --no-sync --no-instructions > "$OUT/initdb.log"
"${AS[@]}" "$PGBIN/postgres" -D "$OUT/pg" -p "$PGPORT" -k "$OUT" -c listen_addresses=127.0.0.1 -c max_connections=200 > "$OUT/pg.log" 2>&1 & echo $! >> "$PIDFILE"
for _ in $(seq 100); do "$PGBIN/pg_isready" -h 127.0.0.1 -p "$PGPORT" -q && break; sleep 0.1; done
"$PGBIN/createdb" -h 127.0.0.1 -p "$PGPORT" -U rollgate bench
URI="postgresql://rollgate@127.0.0.1:$PGPORT/bench"

machine
echo "command: REPLICAS=$REPLICAS SERVICES=$SERVICES DEPLOYS=$DEPLOYS LEASE=$LEASE bash bench/replicas.sh; PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}')"
python3 bench/replicas.py --bin "$BIN" --out "$OUT" --uri "$URI" --replicas "$REPLICAS" --services "$SERVICES" \
  --deploys "$DEPLOYS" --lease "$LEASE" --pidfile "$PIDFILE"
