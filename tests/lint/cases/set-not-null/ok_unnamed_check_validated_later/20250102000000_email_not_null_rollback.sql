-- Rollback: 20250102000000_email_not_null_rollback.sql

ALTER TABLE users ALTER COLUMN email DROP NOT NULL;
