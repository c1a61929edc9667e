-- The simulated load balancer's state, so a restart sees what it would still say.
CREATE TABLE simulated_targets (
    service     TEXT    NOT NULL,
    target_id   TEXT    NOT NULL,
    port        INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
    registered  INTEGER NOT NULL CHECK (registered IN (0, 1)),
    changed_at  INTEGER NOT NULL,
    PRIMARY KEY (service, target_id)
);
