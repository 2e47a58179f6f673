CREATE UNIQUE INDEX CONCURRENTLY orders_key ON orders (user_id, status, created_at, total);
