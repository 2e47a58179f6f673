ALTER TABLE users RENAME CONSTRAINT users_email_key TO users_email_unique;
