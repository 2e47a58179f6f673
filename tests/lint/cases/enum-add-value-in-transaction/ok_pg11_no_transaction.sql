-- pg-version: 11
-- @transaction: false
ALTER TYPE order_status ADD VALUE 'refunded' AFTER 'paid';
