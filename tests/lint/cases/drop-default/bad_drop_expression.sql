-- pg-version: 17
ALTER TABLE orders ALTER COLUMN total_cents DROP EXPRESSION;
