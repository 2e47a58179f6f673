CREATE FUNCTION make_index() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE 'CREATE INDEX i ON users (email)';
END $$;
-- CREATE INDEX in a comment is not DDL
SELECT 'CREATE INDEX i ON users (email)';
