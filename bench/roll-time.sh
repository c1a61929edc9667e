#!/usr/bin/env bash
# How long a roll takes users' capacity away, on the traffic model: 6 targets, a 60 s
# deregistration delay, a 5 s deploy hook, a 5 s health pass; the plain roll, fast drain, and
# two at a time with fast drain, side by side, with the requests users lost (must be 0).
# Runs in real time at SCALE (default 0.1: about a minute), reported in unscaled seconds.
#   bash bench/roll-time.sh        (SCALE=0.1 PROPAGATION=1 QUIET=10 TARGETS=6)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
swift build -c release --product roll-bench >/dev/null
machine
echo "command: SCALE=${SCALE:-0.1} PROPAGATION=${PROPAGATION:-1} QUIET=${QUIET:-10} .build/release/roll-bench"
.build/release/roll-bench
