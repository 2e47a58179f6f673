-- Rollback: 20250101000000_check_email_rollback.sql

ALTER TABLE users DROP CONSTRAINT users_email_check;
