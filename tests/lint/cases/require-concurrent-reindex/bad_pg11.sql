-- pg-version: 11
REINDEX TABLE users;
