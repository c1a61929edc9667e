-- Which rollgate rolled a run (issue 19): the name of the replica that claimed it, or that
-- took it over last (`--name` or `name:`, the host name by default), kept after the run ends
-- (the lease's owner is cleared then).
ALTER TABLE runs ADD COLUMN rolled_by TEXT;
