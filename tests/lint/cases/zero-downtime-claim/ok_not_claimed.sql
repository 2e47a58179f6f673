-- @zero-downtime: false
-- @estimated-duration: 1 minute
-- pgshift-ignore: require-concurrent-index
CREATE INDEX users_email_idx ON users (email);
