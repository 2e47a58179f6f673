-- Rollback: 20250102000000_validate_email_rollback.sql

SELECT 1;
