#!/usr/bin/env bash
# What keeping connections saves on AWS calls (issue 18): the outbound client (libcurl)
# against a local TLS endpoint (Tests/RollgateTests/Support/webhook_sink.py over HTTPS with a
# self-signed certificate for 127.0.0.1), CALLS POSTs of an AWS call's size, CONCURRENCY at a
# time: a new connection (TCP + TLS handshake) per call, as rollgate did, against connections
# kept per origin, side by side in one run. Reports calls per second and CPU per call.
#   bash bench/aws-calls.sh        (CALLS=2000 CONCURRENCY=4)
set -euo pipefail
cd "$(dirname "$0")/.."
CALLS=${CALLS:-2000}; CONCURRENCY=${CONCURRENCY:-4}
OUT=bench/out/aws-calls; rm -rf "$OUT"; mkdir -p "$OUT"
BIN=.build/release/roll-bench; [ -x "$BIN" ] || { echo "build first: make release"; exit 1; }
. bench/lib.sh
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
  -keyout "$OUT/key.pem" -out "$OUT/cert.pem" 2>/dev/null
PORT=$(free_port)
python3 Tests/RollgateTests/Support/webhook_sink.py --port "$PORT" --out "$OUT/sink.jsonl" --quiet \
  --tls-cert "$OUT/cert.pem" --tls-key "$OUT/key.pem" & SINK=$!
trap 'kill -9 $SINK 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sk "https://127.0.0.1:$PORT/" >/dev/null && break; sleep 0.1; done
machine
"$BIN" outbound "https://127.0.0.1:$PORT/" "$CALLS" "$CONCURRENCY" "$OUT/cert.pem" | tee "$OUT/result.txt"
