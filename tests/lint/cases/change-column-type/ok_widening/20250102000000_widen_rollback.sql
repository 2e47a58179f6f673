-- Rollback: 20250102000000_widen_rollback.sql

SELECT 1;
