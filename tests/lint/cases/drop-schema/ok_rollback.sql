-- Rollback: case_rollback.sql
DROP SCHEMA reporting;
