-- pgshift's own tables, version 5. Runs with search_path set to pgshift's schema.

-- `pgshift contract` records how far its statements got, like an apply or a revert: an
-- expand-contract migration's contract phase resumes after a kill where it stopped.
ALTER TABLE progress DROP CONSTRAINT progress_action_check;
ALTER TABLE progress ADD CONSTRAINT progress_action_check
    CHECK (action IN ('apply', 'revert', 'contract'));
