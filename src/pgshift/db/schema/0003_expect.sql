-- pgshift's own tables, version 3. Runs with search_path set to pgshift's schema.

-- Raises unless ok: how a history write that is one SQL statement refuses to go through when
-- the progress row is not where the run left it (compare-and-set). The error ends the
-- transaction, so the migration statements that travelled with the write are rolled back too.
-- SQLSTATE PGSMV is pgshift's own (execution.PROGRESS_MOVED).
CREATE FUNCTION expect(ok boolean, message text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF ok IS NOT TRUE THEN
        RAISE EXCEPTION USING ERRCODE = 'PGSMV', MESSAGE = message;
    END IF;
    RETURN true;
END
$$;
