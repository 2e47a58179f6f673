-- pg-version: 10
ALTER TABLE users ADD COLUMN active boolean DEFAULT true;
