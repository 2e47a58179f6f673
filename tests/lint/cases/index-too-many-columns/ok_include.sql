CREATE INDEX CONCURRENTLY orders_user ON orders (user_id, status) INCLUDE (created_at, total);
