-- Live everywhere (issue 19): a log line or an event committed by one replica wakes the
-- streams open on every other. Each insert signals the channel `rollgate_changes` with what
-- changed ('log <run id>' or 'events'); PostgreSQL delivers a transaction's signals when it
-- commits, and folds identical ones, so a batch of a run's lines is one notification.
CREATE FUNCTION rollgate_notify_log() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('rollgate_changes', 'log ' || NEW.run_id);
    RETURN NULL;
END
$$;
CREATE TRIGGER log_lines_notify AFTER INSERT ON log_lines FOR EACH ROW EXECUTE FUNCTION rollgate_notify_log();

CREATE FUNCTION rollgate_notify_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('rollgate_changes', 'events');
    RETURN NULL;
END
$$;
CREATE TRIGGER run_events_notify AFTER INSERT ON run_events FOR EACH ROW EXECUTE FUNCTION rollgate_notify_events();
