-- Migration: 20250101000000_purge_sessions.sql
-- Version: 20250101000000
-- @risk-level: high
-- @lint-ignore: missing-rollback, delete-all-rows
DELETE FROM sessions;
