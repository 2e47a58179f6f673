-- Migration: 20250102000000_validate_email.sql
-- Version: 20250102000000

ALTER TABLE users VALIDATE CONSTRAINT users_email_nn;
