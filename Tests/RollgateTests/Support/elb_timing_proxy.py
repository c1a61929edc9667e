"""A small fixture in front of moto_server that gives ELBv2 real timing, for tests and
bench/waiter-lag.sh. moto flips target states at once; real ELB keeps a deregistered target
`draining` for the group's deregistration delay and a registered one `initial` until it
passes its health checks. This proxy forwards every request to moto unchanged and rewrites
DescribeTargetHealth answers from what it saw:

  deregistered less than --drain seconds ago   -> draining (Target.DeregistrationInProgress)
  registered less than --healthy seconds ago    -> initial (Elb.RegistrationInProgress)
  registered, and listed in --never-healthy     -> unhealthy (Target.FailedHealthChecks)

It can also answer Throttling (400) or InternalFailure (500) to a share of requests, and
model the account's Describe* token bucket (--describe-bucket 40 --describe-refill 10, as
the ELB guide documents): a Describe* call finding the bucket empty is answered Throttling.
Every call (event "call", target = the action) and every state change it models is written to --events as JSON lines, with the time the
change really happened, so a test or benchmark can tell how late rollgate noticed.

    python3 elb_timing_proxy.py --moto http://127.0.0.1:5000 --port 0 --drain 2 --healthy 1 \
        [--throttle 0.1] [--errors 0.0] [--never-healthy i-1,i-2] [--events events.jsonl]
        [--describe-bucket 40 --describe-refill 10]
Prints "listening on PORT" once it answers.
"""
import argparse
import json
import random
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NS = "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"

parser = argparse.ArgumentParser()
parser.add_argument("--moto", required=True)
parser.add_argument("--port", type=int, default=0)
parser.add_argument("--drain", type=float, default=2.0)
parser.add_argument("--healthy", type=float, default=1.0)
parser.add_argument("--throttle", type=float, default=0.0)
parser.add_argument("--errors", type=float, default=0.0)
parser.add_argument("--never-healthy", default="")
parser.add_argument("--events", default=None)
parser.add_argument("--seed", type=int, default=None)
parser.add_argument("--describe-bucket", type=float, default=0.0)
parser.add_argument("--describe-refill", type=float, default=0.0)
args = parser.parse_args()
never_healthy = set(filter(None, args.never_healthy.split(",")))
rng = random.Random(args.seed)
lock = threading.Lock()
changed = {}  # target id -> ("deregistered" | "registered", time)
groups = {}   # target id -> the target group it was last (de)registered in
ports = {}    # target id -> port


bucket = {"tokens": args.describe_bucket, "at": time.time()}


def take_describe_token():
    """The account's Describe* bucket: False when it is empty (the call is throttled)."""
    if args.describe_bucket <= 0:
        return True
    with lock:
        now = time.time()
        bucket["tokens"] = min(args.describe_bucket, bucket["tokens"] + (now - bucket["at"]) * args.describe_refill)
        bucket["at"] = now
        if bucket["tokens"] < 1:
            return False
        bucket["tokens"] -= 1
        return True


def event(kind, target, at):
    if not args.events:
        return
    with lock, open(args.events, "a") as f:
        f.write(json.dumps({"event": kind, "target": target, "at": at}) + "\n")


def schedule(kind, target, at, delay):
    """Records when the modelled state change will really happen."""
    def fire():
        event(kind, target, at + delay)
    threading.Timer(delay, fire).start()


def state(target):
    with lock:
        entry = changed.get(target)
    if entry is None:
        return None
    kind, at = entry
    age = time.time() - at
    if kind == "deregistered":
        if age < args.drain:
            return ("draining", "Target.DeregistrationInProgress", "Target deregistration is in progress")
        return ("unused", "Target.NotRegistered", "Target is not registered to the target group")
    if age < args.healthy:
        return ("initial", "Elb.RegistrationInProgress", "Target registration is in progress")
    if target in never_healthy:
        return ("unhealthy", "Target.FailedHealthChecks", "Health checks failed")
    return ("healthy", None, None)


def member(target_id, port, st):
    reason = f"<Reason>{st[1]}</Reason><Description>{st[2]}</Description>" if st[1] else ""
    return (f"<member><Target><Id>{target_id}</Id><Port>{port}</Port></Target><HealthCheckPort>{port}</HealthCheckPort>"
            f"<TargetHealth><State>{st[0]}</State>{reason}</TargetHealth></member>")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        self.forward(b"")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        form = dict(urllib.parse.parse_qsl(body.decode(), keep_blank_values=True))
        action = form.get("Action")
        targets = []
        n = 1
        while f"Targets.member.{n}.Id" in form:
            targets.append((form[f"Targets.member.{n}.Id"], form.get(f"Targets.member.{n}.Port", "")))
            n += 1
        event("call", action, time.time())   # every request rollgate sends, answered or not
        roll = rng.random()
        if action and action.startswith("Describe") and not take_describe_token():
            event("throttled", action, time.time())
            return self.answer(400, f'<ErrorResponse xmlns="{NS}"><Error><Type>Sender</Type><Code>Throttling</Code>'
                                    f"<Message>Rate exceeded</Message></Error><RequestId>proxy</RequestId></ErrorResponse>")
        if roll < args.throttle:
            return self.answer(400, f'<ErrorResponse xmlns="{NS}"><Error><Type>Sender</Type><Code>Throttling</Code>'
                                    f"<Message>Rate exceeded</Message></Error><RequestId>proxy</RequestId></ErrorResponse>")
        if roll < args.throttle + args.errors:
            return self.answer(500, f'<ErrorResponse xmlns="{NS}"><Error><Type>Receiver</Type><Code>InternalFailure</Code>'
                                    f"<Message>injected</Message></Error><RequestId>proxy</RequestId></ErrorResponse>")
        now = time.time()
        if action in ("DeregisterTargets", "RegisterTargets"):
            kind = "deregistered" if action == "DeregisterTargets" else "registered"
            for target_id, port in targets:
                with lock:
                    changed[target_id] = (kind, now)
                    ports[target_id] = port
                    groups[target_id] = form.get("TargetGroupArn")
                event(kind, target_id, now)
                if kind == "deregistered":
                    schedule("drained", target_id, now, args.drain)
                elif target_id not in never_healthy:
                    schedule("healthy", target_id, now, args.healthy)
        status, answer = self.forward(body, reply=action != "DescribeTargetHealth")
        if action != "DescribeTargetHealth" or status != 200:
            if action == "DescribeTargetHealth":
                self.answer(status, answer.decode())
            return
        # Rewrite moto's answer with the modelled states.
        seen = {}
        import re
        for m in re.finditer(r"<member><Target><Id>([^<]+)</Id><Port>([^<]*)</Port>.*?<State>([^<]+)</State>", answer.decode()):
            seen[m.group(1)] = m.group(2)
        asked = targets or [(t, p) for t, p in seen.items()]
        if not targets:
            with lock:  # moto drops deregistered targets from the group's list; ELB lists them while draining
                for t, (kind, at) in changed.items():
                    # Only this group's: with several groups, another's draining target is not ours.
                    if kind == "deregistered" and t not in seen and time.time() - at < args.drain \
                            and groups.get(t) == form.get("TargetGroupArn"):
                        asked.append((t, ports.get(t, "")))
        members = []
        for target_id, port in asked:
            st = state(target_id) or (("healthy", None, None) if target_id in seen else ("unused", "Target.NotRegistered", "Target is not registered to the target group"))
            members.append(member(target_id, port or seen.get(target_id, ""), st))
        self.answer(200, f'<DescribeTargetHealthResponse xmlns="{NS}"><DescribeTargetHealthResult><TargetHealthDescriptions>'
                         + "".join(members) + "</TargetHealthDescriptions></DescribeTargetHealthResult>"
                         "<ResponseMetadata><RequestId>proxy</RequestId></ResponseMetadata></DescribeTargetHealthResponse>")

    def forward(self, body, reply=True):
        request = urllib.request.Request(args.moto + self.path, data=body if self.command == "POST" else None, method=self.command)
        for name, value in self.headers.items():
            if name.lower() not in ("host", "content-length", "connection", "accept-encoding"):
                request.add_header(name, value)
        try:
            with urllib.request.urlopen(request) as r:
                status, answer = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, answer = e.code, e.read()
        if reply:
            self.answer(status, answer.decode())
        return status, answer

    def answer(self, status, text):
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
print(f"listening on {server.server_address[1]}", flush=True)
server.serve_forever()
