-- Migration: 20250101000000_noop.sql
-- Version: 20250101000000

-- nothing yet
