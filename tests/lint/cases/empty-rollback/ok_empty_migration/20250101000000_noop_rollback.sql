-- Rollback: 20250101000000_noop_rollback.sql

