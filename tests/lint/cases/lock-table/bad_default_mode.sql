LOCK TABLE users;
