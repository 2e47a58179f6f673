-- pg-version: 16
ALTER TABLE users ALTER COLUMN email SET NOT NULL;
