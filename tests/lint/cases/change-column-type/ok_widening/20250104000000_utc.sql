-- Migration: 20250104000000_utc.sql
-- Version: 20250104000000

-- PostgreSQL 12+: with a zero-offset session time zone timestamp -> timestamptz keeps the bytes.
SET LOCAL TimeZone = 'UTC';
ALTER TABLE products ALTER COLUMN made_at TYPE timestamptz;
