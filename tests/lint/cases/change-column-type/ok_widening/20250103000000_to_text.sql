-- Migration: 20250103000000_to_text.sql
-- Version: 20250103000000

-- varchar to text and text to unbounded varchar are binary-coercible casts in pg_cast.
ALTER TABLE products ALTER COLUMN name TYPE text, ALTER COLUMN code TYPE varchar;
ALTER TABLE products ALTER COLUMN price TYPE numeric;
