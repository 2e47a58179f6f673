DO $$ BEGIN RAISE NOTICE 'COMMIT inside a string is not a statement'; END $$;
