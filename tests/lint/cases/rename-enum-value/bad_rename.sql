ALTER TYPE order_status RENAME VALUE 'done' TO 'closed';
