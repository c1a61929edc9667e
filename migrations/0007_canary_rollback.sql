-- Canary bakes and rollbacks (issue 9).
ALTER TABLE runs ADD COLUMN promote_requested INTEGER NOT NULL DEFAULT 0;  -- end the canary's bake now
ALTER TABLE runs ADD COLUMN rollback_to TEXT;  -- set before an automatic rollback touches anything
