DROP TRIGGER users_audit ON users;
