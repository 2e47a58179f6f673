ALTER TABLE orders ADD COLUMN user_id int REFERENCES users (id);
