-- Which replica rolled a run: the one that claimed it, or took it over last (SQLite's 0015).
ALTER TABLE runs ADD COLUMN rolled_by TEXT;
