-- pgshift's own tables, version 2. Runs with search_path set to pgshift's schema.

-- The rollback file's text as it was when the migration was applied, so the migration can
-- still be reverted after its files are gone (an application downgrade). Rows applied
-- before this version keep NULL: their rollback needs the file.
ALTER TABLE applied ADD COLUMN rollback_sql text;
