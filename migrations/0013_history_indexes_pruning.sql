-- Years of history (issue 18).

-- Every lookup of a service's runs by status (its last good version, the version before,
-- GET /api/v1/runs?service=X&status=Y) walks only that service's runs in that status: with
-- runs_status (status, id) alone, a never-deployed service made the page read every other
-- service's succeeded runs.
CREATE INDEX runs_service_status ON runs (service, status, id);

-- Deleting an event cascades to its deliveries by seq: without an index starting with seq
-- each delete read every delivery.
CREATE INDEX deliveries_seq ON deliveries (seq);

-- The pruner's watermarks: `logs_pruned_through` is the run id up to which every finished
-- run's log lines are gone by age (keep_logs), so a pass reads only the runs after it.
CREATE TABLE maintenance (
    name  TEXT    PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
