-- @zero-downtime: true
-- @risk-level: low
SELECT 1;
