-- Migration: 20250103000000_email_not_null.sql
-- Version: 20250103000000

-- already NOT NULL after the VALIDATE: a no-op
ALTER TABLE users ALTER COLUMN email SET NOT NULL;
