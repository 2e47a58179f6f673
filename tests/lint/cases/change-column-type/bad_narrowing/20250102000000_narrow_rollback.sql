-- Rollback: 20250102000000_narrow_rollback.sql

SELECT 1;
