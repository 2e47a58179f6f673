DROP POLICY users_own_rows ON users;
DROP RULE users_log ON app.users;
