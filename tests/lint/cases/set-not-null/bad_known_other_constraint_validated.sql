-- pg-version: 16
-- @estimated-duration: 1 minute
-- The migrations say what fk is: a foreign key proves nothing about NULLs. An error.
ALTER TABLE users ADD CONSTRAINT fk FOREIGN KEY (org_id) REFERENCES orgs NOT VALID;
-- pgshift-ignore: constraint-missing-not-valid
ALTER TABLE users VALIDATE CONSTRAINT fk;
ALTER TABLE users ALTER COLUMN email SET NOT NULL;
