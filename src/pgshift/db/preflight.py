"""Running pre-flight checks on a target, read-only and bounded, and reading the facts they need.

Why it is careful: the checks run before the backup and before the runner lock, on a database
that serves traffic. Each runs in its own short READ ONLY transaction (so nothing it evaluates,
a user's CHECK expression or USING cast included, can write), with `lock_timeout` 100 ms (a
check never waits in a lock queue, where it would hold up everyone queued behind it) and
`statement_timeout` PGSHIFT_PREFLIGHT_TIMEOUT. A SELECT takes ACCESS SHARE on what it reads,
nothing more; the transaction ends after each check, so no lock outlives its query.
A check that times out, cannot get its lock or errors is "not checked", with the reason: a
pre-flight never blocks a run on its own failure.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import errors, sql

from pgshift.rewrite.preflight import (
    Facts,
    PreflightCheck,
    TableFacts,
    TableRef,
    not_checked,
    result_of,
)
from pgshift.rewrite.preflight_light import PreflightResult

#: A check never waits longer than this for a lock (SPEC 13).
LOCK_TIMEOUT_MS = 100

_FACTS_SQL = """
WITH RECURSIVE
  rel AS (SELECT c.oid FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass(%s)),
  -- the table and its partitions, walked in the catalog: pg_partition_tree would lock them
  tree AS (SELECT oid FROM rel
           UNION SELECT i.inhrelid
             FROM pg_catalog.pg_inherits i JOIN tree ON i.inhparent = tree.oid)
SELECT
  (SELECT coalesce(array_agg(a.attname::text ORDER BY k.n), '{}')
     FROM pg_catalog.pg_index i
     CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n)
     JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
    WHERE i.indrelid = rel.oid AND i.indisprimary),
  (SELECT coalesce(array_agg(a.attname::text ORDER BY a.attnum), '{}')
     FROM pg_catalog.pg_attribute a
    WHERE a.attrelid = rel.oid AND a.attnum > 0 AND NOT a.attisdropped),
  (SELECT coalesce(array_agg(t.typname::text ORDER BY a.attnum), '{}')
     FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
    WHERE a.attrelid = rel.oid AND a.attnum > 0 AND NOT a.attisdropped),
  (SELECT coalesce(sum({size}), 0)::bigint FROM tree t JOIN pg_catalog.pg_class r ON r.oid = t.oid),
  (SELECT coalesce(sum(greatest(r.reltuples, 0)), 0)::float8
     FROM tree t JOIN pg_catalog.pg_class r ON r.oid = t.oid),
  (SELECT coalesce(array_agg(n.conname::text ORDER BY n.conname), '{}')
     FROM pg_catalog.pg_constraint n WHERE n.conrelid = rel.oid),
  (SELECT coalesce(array_agg(pg_catalog.pg_get_constraintdef(n.oid) ORDER BY n.conname), '{}')
     FROM pg_catalog.pg_constraint n WHERE n.conrelid = rel.oid),
  (SELECT coalesce(array_agg(pg_catalog.format_type(a.atttypid, a.atttypmod) ORDER BY a.attnum),
                   '{}')
     FROM pg_catalog.pg_attribute a
    WHERE a.attrelid = rel.oid AND a.attnum > 0 AND NOT a.attisdropped),
  -- defaults, identity and generated columns: what a row a pending INSERT adds gets.
  -- pg_get_expr with relation 0 opens no relation (so takes no lock): a default has no Vars.
  (SELECT coalesce(array_agg(ARRAY[a.attname::text,
                                   CASE WHEN a.attidentity <> '' THEN 'identity'
                                        WHEN a.attgenerated <> '' THEN 'generated'
                                        ELSE 'default' END,
                                   coalesce(pg_catalog.pg_get_expr(d.adbin, 0), '')]
                             ORDER BY a.attnum), '{}')
     FROM pg_catalog.pg_attribute a
     LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE a.attrelid = rel.oid AND a.attnum > 0 AND NOT a.attisdropped
      AND (a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> ''))
FROM rel
"""

#: A table's size on disk: exact, but pg_relation_size takes ACCESS SHARE on it; when a lock
#: keeps it waiting past LOCK_TIMEOUT_MS, the planner's page count (relpages, from the last
#: VACUUM or ANALYZE) stands in, which needs no lock.
_EXACT_SIZE = "pg_catalog.pg_relation_size(t.oid)"
_STATS_SIZE = "r.relpages::bigint * pg_catalog.current_setting('block_size')::bigint"


def read_facts(conn: psycopg.Connection[Any], tables: Sequence[TableRef]) -> Facts:
    """What the checks of ``tables`` need from the catalog; a table that does not exist is left
    out. The table's name reaches the server quoted by psycopg, resolved by to_regclass on this
    session's search_path, as the migration's own statement would be."""
    out: list[tuple[TableRef, TableFacts]] = []
    for ref in tables:
        parts = (ref.schema, ref.name) if ref.schema else (ref.name,)
        name = sql.Identifier(*parts).as_string(conn)
        row = _facts_row(conn, name)
        if row is None:
            continue
        key, names, types, size, rows, connames, condefs, formatted, defaults = row
        out.append(
            (
                ref,
                TableFacts(
                    key=tuple(key),
                    columns=tuple(zip(names, types, strict=True)),
                    bytes=int(size),
                    rows=float(rows),
                    constraints=tuple(zip(connames, condefs, strict=True)),
                    formatted=tuple(zip(names, formatted, strict=True)),
                    defaults=tuple((d[0], d[1], d[2]) for d in defaults),
                ),
            )
        )
    return Facts(server_major=conn.info.server_version // 10000, tables=tuple(out))


def _facts_row(conn: psycopg.Connection[Any], name: str) -> tuple[Any, ...] | None:
    """One table's facts row, never waiting on a lock for longer than LOCK_TIMEOUT_MS."""
    try:
        with conn.transaction():
            conn.execute(
                "SELECT pg_catalog.set_config('lock_timeout', %s, true)", [f"{LOCK_TIMEOUT_MS}ms"]
            )
            return conn.execute(_FACTS_SQL.replace("{size}", _EXACT_SIZE), [name]).fetchone()
    except errors.LockNotAvailable:
        return conn.execute(_FACTS_SQL.replace("{size}", _STATS_SIZE), [name]).fetchone()


def run_checks(
    conn: psycopg.Connection[Any], checks: Sequence[PreflightCheck], *, timeout_ms: int
) -> list[PreflightResult]:
    """Each check's result, in order; a check without a query is "not checked" as it says."""
    return [
        not_checked(check, check.not_checked or "no query")
        if check.sql is None
        else run_check(conn, check, timeout_ms=timeout_ms)
        for check in checks
    ]


def run_check(
    conn: psycopg.Connection[Any], check: PreflightCheck, *, timeout_ms: int
) -> PreflightResult:
    """Run one check in its own READ ONLY transaction on ``conn`` (an autocommit session)."""
    assert check.sql is not None
    started = time.monotonic()
    try:
        with conn.transaction():
            conn.execute("SET TRANSACTION READ ONLY")
            conn.execute(
                "SELECT pg_catalog.set_config('lock_timeout', %s, true),"
                " pg_catalog.set_config('statement_timeout', %s, true)",
                [f"{LOCK_TIMEOUT_MS}ms", f"{timeout_ms}ms"],
            )
            rows = conn.execute(check.sql.encode()).fetchall()
    except errors.LockNotAvailable:
        return not_checked(
            check,
            f"{check.table} is locked by another session (waited {LOCK_TIMEOUT_MS} ms)",
            _since(started),
        )
    except errors.QueryCanceled:
        return not_checked(
            check,
            f"it did not finish within PGSHIFT_PREFLIGHT_TIMEOUT ({timeout_ms} ms)",
            _since(started),
        )
    except psycopg.Error as exc:
        message = exc.diag.message_primary or str(exc)
        if check.derived_from:  # an earlier pending statement's own values fail to compute
            message += f" (reading the rows as {check.derived_from} leave them)"
        return not_checked(check, f"its query failed: {message}", _since(started))
    return result_of(check, rows, _since(started))


def _since(started: float) -> float:
    return (time.monotonic() - started) * 1000
