-- Which rollgate processes share the database, for the AWS call budget (SQLite 0019).
CREATE TABLE replicas (
    owner   TEXT    PRIMARY KEY,
    seen_at BIGINT  NOT NULL
);
