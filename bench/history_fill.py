#!/usr/bin/env python3
"""Fills a migrated rollgate database with history, straight into SQLite (bench/history.sh).

    python3 bench/history_fill.py DB RUNS LINES_PER_RUN SERVICES

RUNS runs spread over SERVICES services (svc01...) and three years, oldest first: 90%
succeeded, 8% failed, 2% cancelled; each with 3 targets x 5 phases of steps, LINES_PER_RUN
log lines, 6 events and a delivery of each event to one webhook. Rows are written as rollgate
writes them (every CHECK holds); the database's indexes are kept while filling."""
import random
import sqlite3
import sys

path, runs, lines_per_run, services = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
db = sqlite3.connect(path, isolation_level=None)
db.execute("PRAGMA journal_mode = WAL")   # as rollgate keeps it
db.execute("PRAGMA synchronous = OFF")
db.execute("PRAGMA cache_size = -262144")
rng = random.Random(18)
start = 1_700_000_000_000
span = 3 * 365 * 86_400_000
phases = ["prepare", "drain", "deploy", "verify", "restore"]
chunk = 5000
event = 0
for first in range(1, runs + 1, chunk):
    db.execute("BEGIN")
    run_rows, step_rows, line_rows, event_rows, delivery_rows = [], [], [], [], []
    for run in range(first, min(runs + 1, first + chunk)):
        service = "svc%02d" % (run % services + 1)
        created = start + span * run // max(runs, 1)
        roll = rng.random()
        status = "succeeded" if roll < 0.90 else "failed" if roll < 0.98 else "cancelled"
        finished = created + 300_000
        error = "deploy hook failed on i-2: exit 1" if status == "failed" else None
        run_rows.append((run, service, "v%d" % run, "ci", status, created, created + 1000, finished, error))
        at = created + 1000
        for target in range(3):
            for phase in phases:
                failed = status == "failed" and target == 2 and phase == "deploy"
                step_rows.append((run, "i-%d" % target, 8080, phase, "failed" if failed else "succeeded", at, at + 20_000,
                                  "exit 1" if failed else None))
                at += 20_000
                if failed:
                    break
            if status == "failed" and target == 2:
                break
        for line in range(lines_per_run):
            line_rows.append((run, created + 1000 + line * 5000, "stdout" if line % 3 else "system", "i-%d" % (line % 3),
                              phases[line % 5], "line %d of run %d: deploying v%d to the target" % (line, run, run)))
        for kind in ["queued", "started", "target_done", "target_done", "target_done",
                     "succeeded" if status == "succeeded" else status]:
            event += 1
            event_rows.append((event, run, service, kind, created))
            delivery_rows.append(("webhook:ci", event, run, created))
    db.executemany("""INSERT INTO runs (id, service, version, requested_by, status, created_at, started_at, finished_at, error)
                      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""", run_rows)
    db.executemany("""INSERT INTO steps (run_id, target_id, target_port, phase, status, started_at, finished_at, error)
                      VALUES (?, ?, ?, ?, ?, ?, ?, ?)""", step_rows)
    db.executemany("INSERT INTO log_lines (run_id, at, stream, target_id, phase, text) VALUES (?, ?, ?, ?, ?, ?)", line_rows)
    db.executemany("INSERT INTO run_events (seq, run_id, service, event, at) VALUES (?, ?, ?, ?, ?)", event_rows)
    db.executemany("""INSERT INTO deliveries (destination, seq, run_id, status, attempts, next_attempt_at, delivered_at)
                      VALUES (?, ?, ?, 'delivered', 1, ?, 1)""", delivery_rows)
    db.execute("COMMIT")
    if first % 100_000 == 1 and runs >= 100_000:
        print("  %d runs written" % (first + chunk - 1), flush=True)
db.execute("INSERT OR REPLACE INTO delivery_cursors (destination, last_seq) VALUES ('webhook:ci', ?)", (event,))
db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
db.close()
