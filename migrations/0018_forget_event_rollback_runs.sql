-- A forget (an operator telling rollgate a left-out target is gone for good) is recorded as
-- an event, target_forgotten, with who and why. SQLite cannot widen a CHECK in place, so
-- run_events is rebuilt as in 0006 (the migrator runs migrations with foreign keys off and
-- checks them before committing); its AUTOINCREMENT high-water mark is carried over, so no
-- seq is ever reused (delivery cursors and Last-Event-ID rely on that).
CREATE TABLE run_events_new (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id    INTEGER,                      -- NULL: a target-state change seen outside a run
    service   TEXT    NOT NULL,
    event     TEXT    NOT NULL CHECK (event IN ('queued', 'started', 'target_done', 'target_left_out',
                                                'succeeded', 'failed', 'cancelled',
                                                'step_started', 'step_succeeded', 'step_failed',
                                                'target_state', 'target_forgotten')),
    target_id TEXT,
    phase     TEXT,                         -- the step's phase, for step_* events
    detail    TEXT,
    at        INTEGER NOT NULL
);
INSERT INTO run_events_new (seq, run_id, service, event, target_id, phase, detail, at)
    SELECT seq, run_id, service, event, target_id, phase, detail, at FROM run_events;
DELETE FROM sqlite_sequence WHERE name = 'run_events_new';
INSERT INTO sqlite_sequence (name, seq) SELECT 'run_events_new', seq FROM sqlite_sequence WHERE name = 'run_events';
DROP TABLE run_events;
ALTER TABLE run_events_new RENAME TO run_events;
CREATE INDEX run_events_run ON run_events (run_id, seq);

-- A run asked for as a rollback (POST .../rollback, the page's button) says from which
-- version: shown as "rollback from v3" beside the version it puts back.
ALTER TABLE runs ADD COLUMN rollback_from TEXT;
