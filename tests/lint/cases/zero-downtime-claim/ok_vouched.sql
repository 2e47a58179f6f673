-- @zero-downtime: true
-- @estimated-duration: 1 second
-- users has 12 rows
-- pgshift-ignore: require-concurrent-index
CREATE INDEX users_email_idx ON users (email);
