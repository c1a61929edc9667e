#!/usr/bin/env python3
"""A notification receiver for the tests: appends every POST it gets to --out as one JSON
line (its path, headers, body and the client's port, which tells connections apart) and
answers 200; GET answers 200 (the readiness check). POST /hold never answers (a receiver
that hangs). --tls-cert/--tls-key serve HTTPS (bench/aws-calls.sh); --quiet records nothing."""
import argparse
import json
import ssl
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--out", required=True)
parser.add_argument("--tls-cert")
parser.add_argument("--tls-key")
parser.add_argument("--quiet", action="store_true")
args = parser.parse_args()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        self.answer(200, b"{}")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path == "/hold":
            time.sleep(120)
            return
        if not args.quiet:
            record = {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body.decode(),
                      "client_port": self.client_address[1]}
            with open(args.out, "a") as f:
                f.write(json.dumps(record) + "\n")
        self.answer(200, b"ok")

    def answer(self, status, body):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


server = ThreadingHTTPServer((args.host, args.port), Handler)
server.daemon_threads = True
if args.tls_cert:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.tls_cert, args.tls_key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
