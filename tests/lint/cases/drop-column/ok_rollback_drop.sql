-- Rollback: case_rollback.sql
ALTER TABLE users DROP COLUMN nickname;
