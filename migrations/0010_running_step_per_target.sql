-- Batches really run side by side (issue 17): a run with max_unavailable > 1 has one step
-- running per target of its batch at once. Migration 0001 allowed one running step per run,
-- so a batch's second target waited for the first (its step insert failed and was retried)
-- and the targets took turns. The rule is now one running step per target of a run.
DROP INDEX steps_one_running_per_run;
CREATE UNIQUE INDEX steps_one_running_per_target ON steps (run_id, target_id) WHERE status = 'running';
