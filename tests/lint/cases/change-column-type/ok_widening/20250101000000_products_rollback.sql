-- Rollback: 20250101000000_products_rollback.sql

DROP TABLE products;
