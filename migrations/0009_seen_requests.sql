-- Replays judged by content (issue 16): a signed request that starts no run (Slack's cancel,
-- promote, lock, unlock) is remembered by a hash of what was signed, for as long as its
-- signature stays fresh; seeing the same bytes again in that time is a replay.
CREATE TABLE seen_requests (
    key        TEXT    PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 200),
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX seen_requests_expires ON seen_requests (expires_at);
