-- Rollback: 20250101000000_add_orders_rollback.sql

DROP TABLE orders;
