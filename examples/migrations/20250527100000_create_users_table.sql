-- Migration: 20250527100000_create_users_table.sql
-- Description: Create the users table
-- Created: 2025-05-27
-- Version: 20250527100000
-- @zero-downtime: true
-- @estimated-duration: 5 seconds
-- @risk-level: low

-- gen_random_uuid() is built into PostgreSQL 13+; no uuid-ossp extension is needed.
CREATE TABLE users (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    email TEXT NOT NULL UNIQUE,
    display_name TEXT,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW()
);
