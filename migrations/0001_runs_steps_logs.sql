-- Runs, their steps and their log lines. Times are milliseconds since the Unix epoch (UTC).
-- The status values mirror RunStatus / StepStatus / Phase in Sources/Rollout.

CREATE TABLE runs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    service          TEXT    NOT NULL CHECK (length(service) BETWEEN 1 AND 64),
    version          TEXT    NOT NULL CHECK (length(version) BETWEEN 1 AND 128),
    reason           TEXT,
    requested_by     TEXT    NOT NULL,
    status           TEXT    NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'superseded')),
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER,
    error            TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
    idempotency_key  TEXT,
    -- A run that ever ran has a start; a finished run has an end, an unfinished one none.
    CHECK (status NOT IN ('running', 'succeeded') OR started_at IS NOT NULL),
    CHECK ((finished_at IS NULL) = (status IN ('queued', 'running'))),
    CHECK (status != 'failed' OR error IS NOT NULL)
);

-- At most one running run per service: the queue's invariant, held by the schema.
CREATE UNIQUE INDEX runs_one_running_per_service ON runs (service) WHERE status = 'running';
CREATE UNIQUE INDEX runs_idempotency_key ON runs (idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX runs_service ON runs (service, id);
CREATE INDEX runs_status ON runs (status, id);

CREATE TABLE steps (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id      INTEGER NOT NULL REFERENCES runs (id),
    target_id   TEXT    NOT NULL,
    target_port INTEGER NOT NULL,
    phase       TEXT    NOT NULL CHECK (phase IN ('prepare', 'drain', 'deploy', 'verify', 'restore')),
    status      TEXT    NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    error       TEXT,
    CHECK ((finished_at IS NULL) = (status = 'running'))
);
CREATE INDEX steps_run ON steps (run_id, id);
-- One step in hand per run at a time.
CREATE UNIQUE INDEX steps_one_running_per_run ON steps (run_id) WHERE status = 'running';

CREATE TABLE log_lines (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id    INTEGER NOT NULL REFERENCES runs (id),
    at        INTEGER NOT NULL,
    stream    TEXT    NOT NULL CHECK (stream IN ('system', 'stdout', 'stderr')),
    target_id TEXT,
    phase     TEXT    CHECK (phase IS NULL OR phase IN ('prepare', 'drain', 'deploy', 'verify', 'restore')),
    text      TEXT    NOT NULL
);
CREATE INDEX log_lines_run ON log_lines (run_id, seq);
