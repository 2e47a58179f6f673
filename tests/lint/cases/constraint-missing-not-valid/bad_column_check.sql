ALTER TABLE orders ADD COLUMN discount int DEFAULT 0 CHECK (discount >= 0);
