-- Rollback: 20250102000000_add_orders_rollback.sql

DROP TABLE orders;
