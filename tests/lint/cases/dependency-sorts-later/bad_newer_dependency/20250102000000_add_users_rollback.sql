-- Rollback: 20250102000000_add_users_rollback.sql

DROP TABLE users;
