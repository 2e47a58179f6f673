-- Rollback: 20250528120000_add_user_preferences_table_rollback.sql
-- Description: Rollback for adding user preferences table
-- Created: 2025-05-28
-- Version: 20250528120000

-- Drop indexes first (CONCURRENTLY: pgshift runs these outside a transaction by itself)
DROP INDEX CONCURRENTLY IF EXISTS idx_user_preferences_key;
DROP INDEX CONCURRENTLY IF EXISTS idx_user_preferences_user_id;

-- Drop the table
DROP TABLE IF EXISTS user_preferences;
