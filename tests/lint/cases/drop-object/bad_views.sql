DROP VIEW active_users, recent_orders CASCADE;
