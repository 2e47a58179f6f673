-- pgshift-ignore: require-concurrent-index
CREATE INDEX CONCURRENTLY users_email_idx ON users (email);
