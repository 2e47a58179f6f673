ALTER TABLE users ADD COLUMN active boolean;
UPDATE settings SET value = 'x' WHERE key = 'y';
