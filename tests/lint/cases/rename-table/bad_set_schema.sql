ALTER TABLE users SET SCHEMA archive;
