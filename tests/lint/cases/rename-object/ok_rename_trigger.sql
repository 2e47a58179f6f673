ALTER TRIGGER users_audit ON users RENAME TO users_audit_log;
