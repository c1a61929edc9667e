-- A target group whose health check rollgate tightened for a run (health_check_during_roll):
-- the group's own settings, written before ModifyTargetGroup and deleted once they are back.
-- A row left by a crash is put back by the resumed run, or at the next start if the run is
-- over. No foreign key to runs: retention may prune the run, never this promise.
CREATE TABLE changed_health_checks (
    service           TEXT    NOT NULL,
    target_group      TEXT    NOT NULL,
    run_id            INTEGER NOT NULL,
    interval_ms       INTEGER NOT NULL CHECK (interval_ms > 0),
    timeout_ms        INTEGER NOT NULL CHECK (timeout_ms > 0),
    healthy_threshold INTEGER NOT NULL CHECK (healthy_threshold > 0),
    changed_at        INTEGER NOT NULL,
    PRIMARY KEY (service, target_group)
);
