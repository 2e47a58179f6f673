-- pgshift's own tables, version 4. Runs with search_path set to pgshift's schema.

-- How far each backfill (SPEC 14) got. A batch's data statement and the move of done_key
-- commit in one transaction, and the move is a compare-and-set from the done_key the batch
-- started from, so a batch is applied exactly once across kills and orphaned sessions.
-- Keys are kept as the text of each key column (key::text), compared again by the server
-- after casting back to the column's type. upper_key is the last key when the backfill
-- started (NULL: the table was empty): rows written later never extend the range.
CREATE TABLE backfill (
    version        text NOT NULL,
    action         text NOT NULL DEFAULT 'apply' CHECK (action IN ('apply', 'revert')),
    checksum       text NOT NULL,
    key_table      text NOT NULL,
    key_columns    text[] NOT NULL,
    upper_key      text[],
    done_key       text[],
    rows_done      bigint NOT NULL DEFAULT 0,   -- rows the statement changed (its row counts)
    keys_done      bigint NOT NULL DEFAULT 0,   -- keys the batches covered: the progress
    rows_estimate  bigint,
    batches        integer NOT NULL DEFAULT 0,
    run_id         uuid NOT NULL,
    started_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at    timestamptz,
    PRIMARY KEY (version, action)
);
