"""bench/replicas.sh's measurements: rollgate replicas on one PostgreSQL (see the script)."""
import argparse, json, os, signal, socket, statistics, subprocess, threading, time, urllib.request

TOKEN = "bench-token-0123456789"
p = argparse.ArgumentParser()
for name in ("bin", "out", "uri", "pidfile"):
    p.add_argument("--" + name, required=True)
for name in ("replicas", "services", "deploys"):
    p.add_argument("--" + name, type=int, required=True)
p.add_argument("--lease", type=float, required=True)
args = p.parse_args()


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close(); return port


def config(name, database, hook="true", services=None):
    path = os.path.join(args.out, name + ".yaml")
    with open(path, "w") as f:
        f.write(f"listen: 127.0.0.1:{free_port()}\nname: {name}\npublic_read: true\ndatabase: {database}\nlease: {int(args.lease)}s\n")
        f.write("rate_limit: {writes_per_second: 1000, burst: 1000}\n")
        f.write(f"api_tokens: [{{name: bench, token: \"{TOKEN}\"}}]\nservices:\n")
        for n in range(services or args.services):
            f.write(f"  - {{name: svc{n}, simulated: {{targets: 2, drain_seconds: 0.05, healthy_seconds: 0.05}}, poll_interval: 100ms, "
                    f"hooks: {{deploy: '{hook}'}}}}\n")
    return path


def start(name, database, hook="true", services=None):
    cfg = config(name, database, hook, services)
    port = int(open(cfg).readline().split(":")[-1])
    proc = subprocess.Popen([args.bin, "serve", "--config", cfg], stdout=open(os.path.join(args.out, name + ".log"), "w"),
                            stderr=subprocess.STDOUT)
    open(args.pidfile, "a").write(f"{proc.pid}\n")
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1); break
        except Exception:
            if proc.poll() is not None:
                raise SystemExit(f"{name} did not start: " + open(os.path.join(args.out, name + ".log")).read()[-1500:])
            time.sleep(0.05)
    return {"name": name, "proc": proc, "port": port}


def get(replica, path):
    return json.load(urllib.request.urlopen(f"http://127.0.0.1:{replica['port']}{path}", timeout=10))


def post(replica, service, version):
    req = urllib.request.Request(f"http://127.0.0.1:{replica['port']}/api/v1/deploys", method="POST",
                                 data=json.dumps({"service": service, "version": version}).encode(),
                                 headers={"Authorization": "Bearer " + TOKEN, "Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req, timeout=10))


def all_runs(replica):
    runs, cursor = [], None
    while True:
        page = get(replica, "/api/v1/runs?limit=200" + (f"&cursor={cursor}" if cursor else ""))
        runs += page["runs"]
        cursor = page.get("next_cursor")
        if not cursor: return runs


def stop(replicas):
    for r in replicas:
        if r["proc"].poll() is None: r["proc"].send_signal(signal.SIGTERM)
    for r in replicas:
        try: r["proc"].wait(timeout=30)
        except Exception: r["proc"].kill()


# 1. Claims: DEPLOYS deploys posted at once, spread across the replicas.
replicas = [start(f"replica-{i + 1}", args.uri) for i in range(args.replicas)]
began = time.time()
threads = []
for n in range(args.deploys):
    t = threading.Thread(target=post, args=(replicas[n % len(replicas)], f"svc{n % args.services}", f"v{n}"))
    t.start(); threads.append(t)
for t in threads: t.join()
while True:
    runs = all_runs(replicas[0])
    if len(runs) >= args.deploys and all(r["status"] not in ("queued", "running") for r in runs): break
    time.sleep(0.1)
elapsed = time.time() - began
by_status = {}
for r in runs: by_status[r["status"]] = by_status.get(r["status"], 0) + 1
overlaps = 0
for n in range(args.services):
    spans = sorted((r["started_at"], r["finished_at"]) for r in runs if r["service"] == f"svc{n}" and r["started_at"])
    overlaps += sum(1 for a, b in zip(spans, spans[1:]) if b[0] < a[1])
rolled = {}
for r in runs:
    if r.get("rolled_by"): rolled[r["rolled_by"]] = rolled.get(r["rolled_by"], 0) + 1
started = sum(1 for r in runs if r["started_at"])
superseded_after_start = sum(1 for r in runs if r["status"] == "superseded" and r["started_at"])
print(f"claims: {args.deploys} deploys of {args.services} services at once across {args.replicas} replicas: "
      f"{len(runs)} runs, {by_status}; {started} started in {elapsed:.1f} s ({started / elapsed:.1f} runs/s); "
      f"rolled by {rolled}; runs of one service overlapping: {overlaps}; started runs marked superseded: {superseded_after_start}; runs ended twice: "
      f"{len(runs) - len({r['id'] for r in runs})}")
stop(replicas)

# 2. Takeover after kill -9 of the holder, in its deploy hook.
replicas = [start(f"replica-{i + 1}", args.uri, hook="sleep 30") for i in range(args.replicas)]
run = post(replicas[0], "svc0", "takeover")
while True:
    r = get(replicas[0], f"/api/v1/runs/{run['id']}")
    if any(s["phase"] == "deploy" and s["status"] == "running" for s in r["steps"]) and r.get("rolled_by"): break
    time.sleep(0.05)
holder = next(x for x in replicas if x["name"] == r["rolled_by"])
other = next(x for x in replicas if x is not holder)
holder["proc"].kill(); killed = time.time()
while True:
    r = get(other, f"/api/v1/runs/{run['id']}")
    if r.get("rolled_by") != holder["name"]: break
    time.sleep(0.02)
taken = time.time() - killed
print(f"takeover: kill -9 of {holder['name']} in a deploy hook; {r['rolled_by']} holds the run {taken:.2f} s later "
      f"(lease {args.lease:.0f} s: target lease + one poll)")
stop(replicas)

# 3. A run read on a replica against the same read on SQLite.
def read_ms(replica, path, n=300):
    times = []
    for _ in range(n):
        t = time.perf_counter(); urllib.request.urlopen(f"http://127.0.0.1:{replica['port']}{path}").read()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)

pg = start("replica-read", args.uri)
sqlite = start("sqlite-read", os.path.join(args.out, "read.db"))
post(sqlite, "svc1", "v1")
for _ in range(200):
    if get(sqlite, "/api/v1/runs/1")["status"] not in ("queued", "running"): break
    time.sleep(0.05)
pg_ms, sqlite_ms = read_ms(pg, "/api/v1/runs/1"), read_ms(sqlite, "/api/v1/runs/1")
print(f"run read: GET /api/v1/runs/1 median {pg_ms:.2f} ms on a PostgreSQL replica, {sqlite_ms:.2f} ms on SQLite "
      f"({pg_ms / sqlite_ms:.2f}x)")
stop([pg, sqlite])

# 4. A hook's line on one replica until it arrives on a stream at another.
hook = 'for i in $(seq 1 40); do echo "at $(date +%s.%N)"; sleep 0.05; done'
writer = start("replica-writer", args.uri, hook=hook, services=1)
reader = start("replica-reader", args.uri, services=1)
run = post(writer, "svc0", "stream")
latencies = []
stream = urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{reader['port']}/api/v1/runs/{run['id']}/logs",
                                                      headers={"Accept": "text/event-stream"}), timeout=60)
for raw in stream:
    line = raw.decode(errors="replace").strip()
    if line.startswith("data: "):
        text = json.loads(line[6:]).get("text", "")
        if text.startswith("at "):
            latencies.append((time.time() - float(text.split()[1])) * 1000)
    if line.startswith("event: end") or len(latencies) >= 80: break
latencies.sort()
if latencies:
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"stream: {len(latencies)} lines printed by a hook on {writer['name']} arrived on a stream at {reader['name']}: "
          f"p50 {statistics.median(latencies):.0f} ms, p99 {p99:.0f} ms (the hook's own buffering included)")
stop([writer, reader])
