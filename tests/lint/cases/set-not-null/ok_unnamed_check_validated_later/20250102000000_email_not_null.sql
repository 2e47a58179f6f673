-- Migration: 20250102000000_email_not_null.sql
-- Version: 20250102000000
-- @estimated-duration: 1 minute

-- The documented recipe's second half in one file: the validated CHECK proves the column
-- has no NULL, so SET NOT NULL skips its scan.
ALTER TABLE users VALIDATE CONSTRAINT users_email_check;
ALTER TABLE users ALTER COLUMN email SET NOT NULL;
