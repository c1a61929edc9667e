-- How long a drained target had been quiet when its drain ended (fast drain's check passing
-- without a break until the end), in milliseconds: with the drain's own duration, the share
-- of the drain that waited on an idle app, which `rollgate plan` reports and prices as what
-- fast drain would save. NULL for drains without a check.
ALTER TABLE steps ADD COLUMN quiet_ms INTEGER CHECK (quiet_ms IS NULL OR quiet_ms >= 0);
