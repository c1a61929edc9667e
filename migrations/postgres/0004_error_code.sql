-- Where a failed run failed: a stable code beside `error` (SQLite's 0016).
ALTER TABLE runs ADD COLUMN error_code TEXT;
