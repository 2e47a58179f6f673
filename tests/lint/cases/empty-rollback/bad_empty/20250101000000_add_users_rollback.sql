-- Rollback: 20250101000000_add_users_rollback.sql

-- TODO
