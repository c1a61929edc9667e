-- A forget is recorded as an event, target_forgotten, with who and why (SQLite 0018).
ALTER TABLE run_events DROP CONSTRAINT run_events_event_check;
ALTER TABLE run_events ADD CONSTRAINT run_events_event_check
    CHECK (event IN ('queued', 'started', 'target_done', 'target_left_out',
                     'succeeded', 'failed', 'cancelled',
                     'step_started', 'step_succeeded', 'step_failed',
                     'target_state', 'target_forgotten'));

-- A run asked for as a rollback says from which version (SQLite 0018).
ALTER TABLE runs ADD COLUMN rollback_from TEXT;
