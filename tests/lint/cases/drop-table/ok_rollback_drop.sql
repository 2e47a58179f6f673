-- Rollback: case_rollback.sql
DROP TABLE user_preferences;
