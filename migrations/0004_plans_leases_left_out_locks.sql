-- Nothing stranded, nothing abandoned (issue 6).

-- A run's plan, frozen when it starts: the targets it rolls, in order, with each one's
-- progress. A restart resumes from here and never re-decides which targets belong to it.
CREATE TABLE run_targets (
    run_id      INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    position    INTEGER NOT NULL CHECK (position >= 0),
    target_id   TEXT    NOT NULL,
    target_port INTEGER NOT NULL CHECK (target_port BETWEEN 1 AND 65535),
    -- pending: not touched yet; out: rollgate took it out of the load balancer (or found it
    -- out) for this run; done: back in service at the run's version.
    progress    TEXT    NOT NULL CHECK (progress IN ('pending', 'out', 'done')),
    PRIMARY KEY (run_id, position),
    UNIQUE (run_id, target_id, target_port)
);

-- Every target rollgate took out of a load balancer and has not seen back in service.
-- Written before DeregisterTargets (write ahead), removed when the target is healthy again.
CREATE TABLE left_out_targets (
    service     TEXT    NOT NULL,
    target_id   TEXT    NOT NULL,
    target_port INTEGER NOT NULL CHECK (target_port BETWEEN 1 AND 65535),
    run_id      INTEGER NOT NULL,
    phase       TEXT    NOT NULL CHECK (phase IN ('prepare', 'drain', 'deploy', 'verify', 'restore')),
    reason      TEXT    NOT NULL,
    since       INTEGER NOT NULL,
    PRIMARY KEY (service, target_id, target_port)
);

-- What a run is: a deploy of a version, or putting one left-out target back (no hooks).
ALTER TABLE runs ADD COLUMN kind TEXT NOT NULL DEFAULT 'deploy' CHECK (kind IN ('deploy', 'restore'));
ALTER TABLE runs ADD COLUMN restore_target_id TEXT;
ALTER TABLE runs ADD COLUMN restore_target_port INTEGER;
-- A queued run that may wait for its service's lock to end (instead of a 423).
ALTER TABLE runs ADD COLUMN wait_for_lock INTEGER NOT NULL DEFAULT 0 CHECK (wait_for_lock IN (0, 1));
-- The worker holding a running run: owner (host, pid, process start) and until when. A claim
-- is a conditional UPDATE, renewal too (fencing: an owner that lost the lease changes nothing).
ALTER TABLE runs ADD COLUMN lease_owner TEXT;
ALTER TABLE runs ADD COLUMN lease_expires_at INTEGER;
-- Interruptions since the run last finished a target; past 3 the run fails (no crash loop).
ALTER TABLE runs ADD COLUMN interruptions INTEGER NOT NULL DEFAULT 0 CHECK (interruptions >= 0);

CREATE TABLE run_interruptions (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    at     INTEGER NOT NULL,
    note   TEXT    NOT NULL
);
CREATE INDEX run_interruptions_run ON run_interruptions (run_id, at);

-- The process serving this database. A second `rollgate serve` refuses to start while the
-- lease is held by a live process.
CREATE TABLE server_holder (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    owner      TEXT    NOT NULL,
    started_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);

-- A service lock: deploys are refused (423) or wait until it ends.
CREATE TABLE service_locks (
    service    TEXT    PRIMARY KEY,
    reason     TEXT    NOT NULL CHECK (length(reason) BETWEEN 1 AND 1000),
    locked_by  TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER
);
