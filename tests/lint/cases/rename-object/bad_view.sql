ALTER VIEW active_users RENAME TO current_users;
