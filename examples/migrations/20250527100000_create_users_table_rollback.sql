-- Rollback: 20250527100000_create_users_table_rollback.sql
-- Description: Rollback for creating the users table
-- Created: 2025-05-27
-- Version: 20250527100000

DROP TABLE IF EXISTS users;
