-- Migration: 20250101000000_add_users.sql
-- Version: 20250101000000

CREATE TABLE users (id bigint PRIMARY KEY);
