-- pg-version: 16
-- @estimated-duration: 1 minute
-- email_nn is not made by any migration (by hand, or before the history): it may be
-- CHECK (email IS NOT NULL), which would make SET NOT NULL skip its scan. A warning.
ALTER TABLE users VALIDATE CONSTRAINT email_nn;
ALTER TABLE users ALTER COLUMN email SET NOT NULL;
