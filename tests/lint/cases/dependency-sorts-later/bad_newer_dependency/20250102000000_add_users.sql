-- Migration: 20250102000000_add_users.sql
-- Version: 20250102000000

CREATE TABLE users (id bigint PRIMARY KEY);
