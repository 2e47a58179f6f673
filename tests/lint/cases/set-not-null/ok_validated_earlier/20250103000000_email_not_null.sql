-- Migration: 20250103000000_email_not_null.sql
-- Version: 20250103000000

ALTER TABLE users ALTER COLUMN email SET NOT NULL;
