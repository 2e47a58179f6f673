-- Migration: 20250102000000_narrow.sql
-- Version: 20250102000000
-- @lint-ignore: prefer-text, prefer-timestamptz

-- @estimated-duration: 2 minutes
ALTER TABLE products ALTER COLUMN name TYPE varchar(50);
ALTER TABLE products ALTER COLUMN code TYPE varchar(20);
ALTER TABLE products ALTER COLUMN price TYPE numeric(10, 3);
ALTER TABLE products ALTER COLUMN made_at TYPE timestamptz;
ALTER TABLE products ALTER COLUMN name TYPE text USING lower(name);
