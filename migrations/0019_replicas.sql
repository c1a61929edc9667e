-- Which rollgate processes share the database: each writes here at every lease renewal (and
-- deletes its row when it stops), with its weight: the runs it holds, at least 1 (an idle
-- replica still asks for target states for its pages). The AWS call budget
-- (aws.describe_per_second, changes_per_second) is the fleet's: each replica seen within a
-- lease spends its weight's share of it. SQLite has one process at a time: one row at most.
CREATE TABLE replicas (
    owner   TEXT    PRIMARY KEY,
    weight  INTEGER NOT NULL DEFAULT 1 CHECK (weight >= 1),
    seen_at INTEGER NOT NULL
);
