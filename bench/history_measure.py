#!/usr/bin/env python3
"""bench/history.sh's measurements.

    history_measure.py reads BASE OUT.json [SMALL.json]
                                                median time of each read, 15 tries each; with
                                                SMALL.json (the small database's), each list
                                                asks for as many runs as the small one gave
    history_measure.py pass BASE TOKEN DB LOG   while the pruner's first pass runs (until LOG
                                                says "pruned"): each second the page, a deploy
                                                and /healthz; prints what the pass cost them
"""
import json
import os
import statistics
import sys
import time
import urllib.request


def timed(url, data=None, headers=None):
    request = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data is not None else "GET")
    begin = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            body = answer.read()
            status = answer.status
    except urllib.error.HTTPError as error:
        body, status = error.read(), error.code
    except Exception as error:  # a timeout is a result here
        return 60_000.0, 0, str(error).encode()
    return (time.perf_counter() - begin) * 1000, status, body


def reads(base, out, small=None):
    newest = json.loads(timed(base + "/api/v1/runs?limit=1")[2])["runs"][0]["id"]
    middle = max(1, newest // 2)
    paths = {
        "page /": "/",
        "/status.txt": "/status.txt",
        "/api/v1/services": "/api/v1/services",
        "/metrics": "/metrics",
        "runs, first page": "/api/v1/runs?limit=50",
        "runs, deep page": "/api/v1/runs?limit=50&cursor=%d" % middle,
        "runs of a service": "/api/v1/runs?service=svc07&limit=50",
        "runs in a status": "/api/v1/runs?status=failed&limit=50",
        "runs of a service in a status": "/api/v1/runs?service=svc07&status=succeeded&limit=50",
        "deep page of a service in a status": "/api/v1/runs?service=svc07&status=succeeded&limit=50&cursor=%d" % middle,
        "filter matching nothing": "/api/v1/runs?service=fresh&status=succeeded&limit=50",
        "status matching nothing": "/api/v1/runs?status=running&limit=50",
        "a run": "/api/v1/runs/%d" % middle,
        "a run's log": "/api/v1/runs/%d/logs" % middle,
        "the plan of a service": "/api/v1/services/svc07/plan",
    }
    sizes = json.load(open(small))["sizes"] if small else {}
    result, counts = {}, {}
    for name, path in paths.items():
        if sizes.get(name):   # the same page size as the small database's answer
            path = path.replace("limit=50", "limit=%d" % sizes[name])
        times = []
        for _ in range(15):
            ms, status, body = timed(base + path)
            if status != 200:
                sys.exit("%s answered %d: %s" % (path, status, body[:200]))
            times.append(ms)
        result[name] = statistics.median(times)
        if path.startswith("/api/v1/runs?"):
            counts[name] = len(json.loads(body)["runs"])
    json.dump({"times": result, "sizes": counts}, open(out, "w"))


def during_pass(base, token, db, log):
    auth = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
    page, deploys, health, wal = [], [], {}, 0
    started = time.time()
    number = 0

    def probe():
        # The page, a deploy and /healthz once each, as an operator and CI would meanwhile.
        page.append(timed(base + "/")[0])
        body = json.dumps({"service": "fresh", "version": "v%d" % number}).encode()
        ms, status, _ = timed(base + "/api/v1/deploys", body, dict(auth, **{"Idempotency-Key": "pass-%d" % number}))
        deploys.append(ms if status == 202 else 60_000.0)
        state = json.loads(timed(base + "/healthz")[2] or b"{}").get("status", "?")
        health[state] = health.get(state, 0) + 1

    while "pruned" not in open(log).read():
        number += 1
        probe()
        try:
            wal = max(wal, os.path.getsize(db + "-wal"))
        except OSError:
            pass
        time.sleep(1)
        if time.time() - started > 3600:
            sys.exit("the pass did not end within an hour")
    pruned_at = time.time()
    while "compacted" not in open(log).read() and time.time() - pruned_at < 3600:
        number += 1
        probe()
        time.sleep(0.2)
    print("first retention pass: %.0f s, then giving free pages back %.0f s" % (pruned_at - started, time.time() - pruned_at))
    print("  page during the pass and the compaction: median %.0f ms, max %.0f ms (%d tries)" % (statistics.median(page), max(page), len(page)))
    print("  POST /api/v1/deploys during them: median %.0f ms, max %.0f ms (%d tries)" % (statistics.median(deploys), max(deploys), len(deploys)))
    print("  /healthz during them: %s" % ", ".join("%s %d" % kv for kv in sorted(health.items())))
    print("  write-ahead log at most %.0f MB" % (wal / 1e6))


if sys.argv[1] == "reads":
    reads(*sys.argv[2:5])
else:
    during_pass(*sys.argv[2:6])
