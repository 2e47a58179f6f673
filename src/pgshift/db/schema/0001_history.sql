-- pgshift's own tables, version 1. Runs with search_path set to pgshift's schema.

CREATE TABLE applied (
    version           text PRIMARY KEY,
    description       text NOT NULL,
    checksum          text NOT NULL,
    rollback_checksum text,
    applied_at        timestamptz NOT NULL DEFAULT now(),
    duration_ms       bigint NOT NULL,
    applied_by        text NOT NULL,
    host              text,
    run_id            uuid NOT NULL,
    metadata          jsonb NOT NULL DEFAULT '{}'
);

-- Every event of every run, kept after rollbacks: "check migration logs in the database".
CREATE TABLE log (
    id         bigserial PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    run_id     uuid,
    event      text NOT NULL,
    version    text,
    pid        integer NOT NULL DEFAULT pg_backend_pid(),
    db_user    text NOT NULL DEFAULT current_user,
    detail     jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX log_version_idx ON log (version, id);
CREATE INDEX log_run_idx ON log (run_id, id);

-- Migrations (or their rollbacks) that run partly outside a transaction: how far they got.
CREATE TABLE progress (
    version          text PRIMARY KEY,
    action           text NOT NULL DEFAULT 'apply' CHECK (action IN ('apply', 'revert')),
    checksum         text NOT NULL,
    prefix_checksum  text NOT NULL,
    statements_done  integer NOT NULL,
    run_id           uuid NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT clock_timestamp()
);
