-- Migration: 20250101000000_add_orders.sql
-- Version: 20250101000000
-- @dependencies: 20250102000000_add_users
CREATE TABLE orders (id bigint PRIMARY KEY);
