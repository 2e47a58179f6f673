CREATE INDEX CONCURRENTLY orders_wide ON orders (user_id, status, created_at, total);
