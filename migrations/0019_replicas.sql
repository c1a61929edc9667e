-- Which rollgate processes share the database: each writes here at every lease renewal (and
-- deletes its row when it stops). The AWS call budget (aws.describe_per_second,
-- changes_per_second) is the fleet's: each of the N seen within a lease takes 1/N of it.
-- SQLite has one process at a time, so this table holds at most one row there.
CREATE TABLE replicas (
    owner   TEXT    PRIMARY KEY,
    seen_at INTEGER NOT NULL
);
