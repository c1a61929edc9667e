#!/bin/sh
# A fast-drain check for a Spring Boot service (fast_drain: {check: ..., quiet: 10s}): exits 0
# only when the app on the target has no request in flight and finished none since the check
# before (rollgate runs it every poll while the load balancer says `draining`, and counts the
# target drained once it has passed for `quiet` without a break).
#
#   fast_drain: {check: ./examples/idle-check-spring-boot.sh, quiet: 10s}
#   environment: ROLLGATE_TARGET_HOST, ROLLGATE_TARGET_ID, ROLLGATE_CHECK=fast_drain
#
# It reads Spring Boot Actuator's Micrometer metrics on the management port (here 8081, not
# behind the load balancer, so this check is not itself traffic the app counts as a request):
#   http.server.requests.active  requests in flight now (Spring Boot 3)
#   http.server.requests         COUNT of finished requests, compared with the last check's
set -eu
host=${ROLLGATE_TARGET_HOST:?no ROLLGATE_TARGET_HOST: is the service an AWS target group?}
base="http://$host:${MANAGEMENT_PORT:-8081}/actuator/metrics"
state="${TMPDIR:-/tmp}/rollgate-idle-${ROLLGATE_TARGET_ID:-$host}"

value() { # METRIC STATISTIC -> the number, or nothing
    curl -fsS --max-time 2 "$base/$1" 2>/dev/null |
        sed -n "s/.*\"statistic\":\"$2\",\"value\":\([0-9.Ee+-]*\).*/\1/p" | head -n 1
}

active=$(value http.server.requests.active ACTIVE_TASKS)
finished=$(value http.server.requests COUNT)
[ -n "$finished" ] || { echo "cannot read $base/http.server.requests"; exit 2; }
before=$(cat "$state" 2>/dev/null || echo none)
echo "$finished" > "$state"

if [ "${active:-0}" != "0" ] && [ "${active:-0}" != "0.0" ]; then
    echo "$active request(s) in flight"
    exit 1
fi
if [ "$before" != "$finished" ]; then
    echo "requests finished since the last check ($before -> $finished)"
    exit 1
fi
echo "idle: nothing in flight, nothing finished since the last check"
