-- deployed code stopped using it in release 42
-- pgshift-ignore: drop-column
ALTER TABLE users DROP COLUMN legacy_flag;
