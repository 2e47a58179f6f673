-- Migration: 20250101000000_check_email.sql
-- Version: 20250101000000

-- No name: PostgreSQL calls it users_email_check.
ALTER TABLE users ADD CHECK (email IS NOT NULL) NOT VALID;
