-- Notifications (issue 7): what happened to runs, in order, written in the same transaction
-- as the change itself; each destination works through it and records every delivery.

CREATE TABLE run_events (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id    INTEGER NOT NULL,
    service   TEXT    NOT NULL,
    event     TEXT    NOT NULL CHECK (event IN ('queued', 'started', 'target_done', 'target_left_out',
                                                'succeeded', 'failed', 'cancelled')),
    target_id TEXT,
    detail    TEXT,
    at        INTEGER NOT NULL
);
CREATE INDEX run_events_run ON run_events (run_id, seq);

-- A destination (a Slack incoming webhook, a signed webhook, a Slack response_url, GitHub
-- deployment statuses) has a row per event it is to receive, sent in seq order.
CREATE TABLE deliveries (
    destination     TEXT    NOT NULL,
    seq             INTEGER NOT NULL REFERENCES run_events (seq) ON DELETE CASCADE,
    run_id          INTEGER NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    delivered_at    INTEGER,
    PRIMARY KEY (destination, seq),
    CHECK ((delivered_at IS NOT NULL) = (status = 'delivered'))
);
CREATE INDEX deliveries_pending ON deliveries (destination, seq) WHERE status = 'pending';
CREATE INDEX deliveries_run ON deliveries (run_id, seq);

-- How far each destination has looked through run_events.
CREATE TABLE delivery_cursors (
    destination TEXT    PRIMARY KEY,
    last_seq    INTEGER NOT NULL
);

-- Where a run started from chat or GitHub wants to hear back.
ALTER TABLE runs ADD COLUMN reply_url TEXT;          -- Slack's response_url (30 minutes, 5 uses)
ALTER TABLE runs ADD COLUMN github_deployment TEXT;  -- OWNER/REPO/ID of a GitHub deployment
