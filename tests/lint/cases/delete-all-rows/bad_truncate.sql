TRUNCATE audit_log, sessions;
