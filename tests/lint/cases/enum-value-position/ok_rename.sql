-- pgshift-ignore: rename-enum-value
ALTER TYPE order_status RENAME VALUE 'done' TO 'closed';
