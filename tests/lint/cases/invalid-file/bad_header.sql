-- @risk-level: extreme
SELECT 1;
