CREATE UNIQUE INDEX users_email_key ON app.users (lower(email));
