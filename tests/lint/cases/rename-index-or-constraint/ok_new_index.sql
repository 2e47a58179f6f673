CREATE INDEX CONCURRENTLY users_email_tmp ON users (email);
ALTER INDEX users_email_tmp RENAME TO users_email_idx;
