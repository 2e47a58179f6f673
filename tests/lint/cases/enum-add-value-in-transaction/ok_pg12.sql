-- pg-version: 12
ALTER TYPE order_status ADD VALUE 'refunded' AFTER 'paid';
