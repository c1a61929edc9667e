-- Where a failed run failed (issue 19): a stable code beside `error`'s words
-- (`RunFailure.Code`: preflight_unhealthy, drain_timeout, health_timeout, hook_failed, ...),
-- set when the run ends failed, or when a rollback begins (the cause's code, so a resumed
-- rollback keeps it). No CHECK: a newer rollgate may add codes without rebuilding the table;
-- an older one reads a code it does not know as `unexpected`.
ALTER TABLE runs ADD COLUMN error_code TEXT;
