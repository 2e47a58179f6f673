-- Migration: 20250101000000_check_email.sql
-- Version: 20250101000000

ALTER TABLE users ADD CONSTRAINT users_email_nn CHECK (email IS NOT NULL) NOT VALID;
