-- Rollback: case_rollback.sql
ALTER TABLE users ALTER COLUMN email DROP NOT NULL;
