-- pg-version: 18
-- PostgreSQL 18: a NOT VALID not-null constraint; VALIDATE CONSTRAINT in a later migration.
ALTER TABLE users ADD CONSTRAINT users_email_nn NOT NULL email NOT VALID;
