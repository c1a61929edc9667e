-- The process group of the hook a step runs, so a restart after kill -9 can end a hook
-- the dead process left running (it would otherwise go on beside the next deploy).
ALTER TABLE steps ADD COLUMN hook_process_group INTEGER CHECK (hook_process_group IS NULL OR hook_process_group > 1);
