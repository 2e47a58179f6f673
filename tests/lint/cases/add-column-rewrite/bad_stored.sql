ALTER TABLE users ADD COLUMN total numeric GENERATED ALWAYS AS (price * qty) STORED;
