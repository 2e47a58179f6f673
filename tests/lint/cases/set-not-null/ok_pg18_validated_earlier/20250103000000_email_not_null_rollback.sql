-- Rollback: 20250103000000_email_not_null_rollback.sql

SELECT 1;
