-- Rollback: 20250101000000_email_nn_rollback.sql

ALTER TABLE users DROP CONSTRAINT users_email_nn;
