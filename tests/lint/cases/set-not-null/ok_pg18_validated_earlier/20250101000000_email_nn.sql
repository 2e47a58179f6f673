-- Migration: 20250101000000_email_nn.sql
-- Version: 20250101000000

ALTER TABLE users ADD CONSTRAINT users_email_nn NOT NULL email NOT VALID;
