-- Migration: 20250101000000_products.sql
-- Version: 20250101000000
-- @lint-ignore: prefer-text, prefer-timestamptz

CREATE TABLE products (
    name varchar(50),
    code text,
    price numeric(8, 2),
    flags varbit(4),
    seen_at timestamp(0),
    made_at timestamp
);
