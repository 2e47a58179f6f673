ALTER TYPE order_status ADD VALUE 'closed' AFTER 'done';
