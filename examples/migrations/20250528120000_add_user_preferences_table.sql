-- Migration: 20250528120000_add_user_preferences_table.sql
-- Description: Add user preferences table for storing user settings
-- Created: 2025-05-28
-- Version: 20250528120000
-- @zero-downtime: true
-- @estimated-duration: 30 seconds
-- @risk-level: low
-- @dependencies: 20250527100000_create_users_table

-- Create the user preferences table
CREATE TABLE user_preferences (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    preference_key VARCHAR(255) NOT NULL,
    preference_value JSONB,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),

    CONSTRAINT user_preferences_unique_key UNIQUE (user_id, preference_key)
);

-- Add indexes for performance
CREATE INDEX CONCURRENTLY idx_user_preferences_user_id ON user_preferences(user_id);
CREATE INDEX CONCURRENTLY idx_user_preferences_key ON user_preferences(preference_key);
