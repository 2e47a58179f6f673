TRUNCATE staging_users;
