-- @risk-level: low
-- pgshift-ignore: drop-column
ALTER TABLE users DROP COLUMN legacy_flag;
