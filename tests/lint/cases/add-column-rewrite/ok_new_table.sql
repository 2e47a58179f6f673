CREATE TABLE t (a int);
ALTER TABLE t ADD COLUMN token uuid DEFAULT gen_random_uuid();
