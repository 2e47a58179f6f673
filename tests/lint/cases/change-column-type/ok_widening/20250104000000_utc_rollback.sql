-- Rollback: 20250104000000_utc_rollback.sql

SELECT 1;
