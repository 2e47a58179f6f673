-- Migration: 20250102000000_widen.sql
-- Version: 20250102000000
-- @lint-ignore: prefer-text, prefer-timestamptz

-- varchar_support, numeric_support, varbit_support and TemporalSimplify turn these into
-- relabels, so ATColumnChangeRequiresRewrite finds nothing to rewrite.
ALTER TABLE products
    ALTER COLUMN name TYPE varchar(100),
    ALTER COLUMN price TYPE numeric(12, 2),
    ALTER COLUMN flags TYPE varbit(16),
    ALTER COLUMN seen_at TYPE timestamp(3);
