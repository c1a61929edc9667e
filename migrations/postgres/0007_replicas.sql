-- Which rollgate processes share the database, with their weights, for the AWS call budget
-- (SQLite 0019).
CREATE TABLE replicas (
    owner   TEXT    PRIMARY KEY,
    weight  BIGINT  NOT NULL DEFAULT 1 CHECK (weight >= 1),
    seen_at BIGINT  NOT NULL
);
