-- Migration: 20250102000000_add_orders.sql
-- Version: 20250102000000
-- @dependencies: 20250101000000
CREATE TABLE orders (id bigint PRIMARY KEY);
