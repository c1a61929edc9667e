-- Which version runs on which target (issue 20): the version rollgate last put on a target
-- (a deploy's, or the previous one a rollback put back) and when, by which run. Written in the
-- transaction that marks the target back in service; a restore run moves no version. A target
-- with no row was never deployed by rollgate: its version is unknown.
CREATE TABLE target_versions (
    service     TEXT    NOT NULL,
    target_id   TEXT    NOT NULL,
    target_port INTEGER NOT NULL CHECK (target_port BETWEEN 1 AND 65535),
    version     TEXT    NOT NULL,
    run_id      INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    PRIMARY KEY (service, target_id, target_port)
);
