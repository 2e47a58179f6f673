ALTER TYPE order_status SET SCHEMA billing;
