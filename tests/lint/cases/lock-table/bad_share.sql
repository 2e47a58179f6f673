LOCK TABLE users, orders IN SHARE MODE;
