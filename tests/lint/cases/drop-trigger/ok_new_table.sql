-- A trigger on a table made in the same file: nothing running relies on it yet.
CREATE TABLE audit_me (id bigint);
CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER t BEFORE INSERT ON audit_me FOR EACH ROW EXECUTE FUNCTION f();
DROP TRIGGER t ON audit_me;
