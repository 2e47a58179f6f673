-- @zero-downtime: true
-- @estimated-duration: 1 minute
CREATE INDEX users_email_idx ON users (email);
