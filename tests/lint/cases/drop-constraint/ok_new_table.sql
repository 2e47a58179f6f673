CREATE TABLE t (a int CONSTRAINT a_positive CHECK (a > 0));
ALTER TABLE t DROP CONSTRAINT a_positive;
