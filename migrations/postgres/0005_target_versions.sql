-- Which version runs on which target (SQLite's 0017).
CREATE TABLE target_versions (
    service     TEXT    NOT NULL,
    target_id   TEXT    NOT NULL,
    target_port BIGINT  NOT NULL CHECK (target_port BETWEEN 1 AND 65535),
    version     TEXT    NOT NULL,
    run_id      BIGINT  NOT NULL,
    at          BIGINT  NOT NULL,
    PRIMARY KEY (service, target_id, target_port)
);
