-- A stale process can do nothing; resume keeps every promise (issue 17).

-- Each claim and each takeover of a run increments its epoch; every write of the run names
-- the (owner, epoch) it is made under and changes nothing unless the run is still held by
-- exactly that holding (fencing).
ALTER TABLE runs ADD COLUMN lease_epoch INTEGER NOT NULL DEFAULT 0 CHECK (lease_epoch >= 0);

-- The failure that started an automatic rollback: a resumed rollback keeps it in `error`.
ALTER TABLE runs ADD COLUMN rollback_cause TEXT;
-- The newest step before the rollback began: steps after it are the rollback's own, so a
-- resumed rollback counts its attempts from them.
ALTER TABLE runs ADD COLUMN rollback_after_step INTEGER CHECK (rollback_after_step >= 0);

-- Per touched target, once its run is rolling back: still owed the rollback, or back on the
-- previous version. A resumed rollback skips the done ones.
ALTER TABLE run_targets ADD COLUMN rollback TEXT CHECK (rollback IN ('pending', 'done'));

-- How much of a canary's bake has passed: a resumed run bakes only what is left.
ALTER TABLE runs ADD COLUMN bake_elapsed_ms INTEGER CHECK (bake_elapsed_ms >= 0);
