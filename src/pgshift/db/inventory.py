"""The SQL that backups and restores send: inventories, snapshots, history reads, restore epilogues.

Why it lives in ``db/``: DESIGN.md gives every statement pgshift sends to one layer, so
``ops/backup.py`` decides what to dump and restore while this module owns how the database is
asked. Identifiers are quoted by the server (``quote_ident``, ``%I``, ``sql.Identifier``), never by
hand: the inventory's identities are spelled by ``format('%I')``, and anything compared with them
must be spelled the same way (a hand-written rule forgets keywords such as ``order``).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pgshift.model import SchemaObject

if TYPE_CHECKING:
    import psycopg

#: Top-level objects of every user schema, with a summary of their definition and the statement
#: that drops each. Objects that belong to an extension, sequences owned by a column, indexes that
#: back a constraint and row types of tables are left out: they come and go with their owner.
INVENTORY_SQL = """
WITH ns AS (
  SELECT oid, nspname FROM pg_namespace
  WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'
), ext AS (
  SELECT classid, objid FROM pg_depend WHERE deptype = 'e'
)
SELECT 'schema', quote_ident(ns.nspname), '', format('DROP SCHEMA IF EXISTS %I CASCADE', nspname)
FROM ns WHERE NOT EXISTS (
  SELECT 1 FROM ext WHERE ext.classid = 'pg_namespace'::regclass AND ext.objid = ns.oid)
UNION ALL
SELECT 'extension', quote_ident(e.extname), e.extversion,
       format('DROP EXTENSION IF EXISTS %I CASCADE', e.extname)
FROM pg_extension e
UNION ALL
SELECT k.kind, format('%I.%I', ns.nspname, c.relname),
       CASE WHEN c.relkind IN ('i', 'I') THEN pg_get_indexdef(c.oid)
            WHEN c.relkind IN ('v', 'm') THEN md5(pg_get_viewdef(c.oid))
            WHEN c.relkind = 'S' THEN ''
            ELSE coalesce((SELECT string_agg(format('%I %s%s', a.attname,
                     format_type(a.atttypid, a.atttypmod),
                     CASE WHEN a.attnotnull THEN ' not null' ELSE '' END), ', '
                     ORDER BY a.attname)
                 FROM pg_attribute a
                 WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '') END,
       format('DROP %s IF EXISTS %I.%I CASCADE', upper(k.kind), ns.nspname, c.relname)
FROM pg_class c
JOIN ns ON ns.oid = c.relnamespace
JOIN (VALUES ('r', 'table'), ('p', 'table'), ('v', 'view'), ('m', 'materialized view'),
             ('S', 'sequence'), ('f', 'foreign table'), ('i', 'index'), ('I', 'index'),
             ('c', 'type')) AS k(relkind, kind) ON k.relkind = c.relkind::text
WHERE NOT EXISTS (SELECT 1 FROM ext WHERE ext.classid = 'pg_class'::regclass AND ext.objid = c.oid)
  AND NOT (c.relkind = 'S' AND EXISTS (
    SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
      AND d.refclassid = 'pg_class'::regclass AND d.refobjsubid > 0 AND d.deptype IN ('a', 'i')))
  AND NOT (c.relkind IN ('i', 'I') AND (c.relispartition OR EXISTS (
    SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
      AND d.refclassid = 'pg_constraint'::regclass AND d.deptype = 'i')))
UNION ALL
SELECT 'constraint', format('%I on %I.%I', con.conname, ns.nspname, c.relname),
       pg_get_constraintdef(con.oid),
       format('ALTER TABLE IF EXISTS %I.%I DROP CONSTRAINT IF EXISTS %I CASCADE',
              ns.nspname, c.relname, con.conname)
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN ns ON ns.oid = c.relnamespace
WHERE con.contype <> 'n'
  AND NOT EXISTS (SELECT 1 FROM ext WHERE ext.classid = 'pg_class'::regclass AND ext.objid = c.oid)
UNION ALL
SELECT k.kind, (pg_identify_object('pg_proc'::regclass, p.oid, 0)).identity,
       md5(coalesce(p.prosrc, '') || ' ' || p.prorettype::regtype::text),
       format('DROP %s IF EXISTS %s CASCADE', upper(k.kind),
              (pg_identify_object('pg_proc'::regclass, p.oid, 0)).identity)
FROM pg_proc p
JOIN ns ON ns.oid = p.pronamespace
JOIN (VALUES ('f', 'function'), ('p', 'procedure'), ('a', 'aggregate'), ('w', 'function'))
     AS k(prokind, kind) ON k.prokind = p.prokind::text
WHERE NOT EXISTS (SELECT 1 FROM ext WHERE ext.classid = 'pg_proc'::regclass AND ext.objid = p.oid)
UNION ALL
SELECT CASE t.typtype WHEN 'd' THEN 'domain' ELSE 'type' END,
       format('%I.%I', ns.nspname, t.typname),
       CASE t.typtype
         WHEN 'e' THEN (SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
                        FROM pg_enum e WHERE e.enumtypid = t.oid)
         WHEN 'd' THEN format_type(t.typbasetype, t.typtypmod)
         ELSE '' END,
       format('DROP %s IF EXISTS %I.%I CASCADE',
              CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, ns.nspname, t.typname)
FROM pg_type t
JOIN ns ON ns.oid = t.typnamespace
WHERE t.typtype IN ('e', 'd', 'r')
  AND NOT EXISTS (SELECT 1 FROM ext WHERE ext.classid = 'pg_type'::regclass AND ext.objid = t.oid)
"""


def inventory(conn: psycopg.Connection[tuple[Any, ...]]) -> tuple[SchemaObject, ...]:
    """The database's top-level objects, sorted, for manifests, restores and verification."""
    rows = conn.execute(INVENTORY_SQL).fetchall()
    return tuple(
        sorted(SchemaObject(str(r[0]), str(r[1]), str(r[2] or ""), str(r[3])) for r in rows)
    )


def quote_ident(conn: psycopg.Connection[tuple[Any, ...]], name: str) -> str:
    """``name`` quoted only where needed, exactly as the inventory's ``%I`` spells it.

    ``sql.Identifier`` always quotes (``"pgshift"``), which is right for SQL but does not match an
    inventory identity (``pgshift.log``); the server's own function does.
    """
    row = conn.execute("SELECT pg_catalog.quote_ident(%s)", (name,)).fetchone()
    assert row is not None
    return str(row[0])


def identifier(conn: psycopg.Connection[tuple[Any, ...]], name: str) -> str:
    """``name`` as a quoted identifier (for a pg_dump ``--schema`` pattern: matched literally)."""
    from psycopg import sql

    return sql.Identifier(name).as_string(conn)


def has_schema(conn: psycopg.Connection[tuple[Any, ...]], name: str) -> bool:
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = %s)", (name,)
    ).fetchone()
    return bool(row and row[0])


def current_database(conn: psycopg.Connection[tuple[Any, ...]]) -> str:
    """The database's real name (through a pooler, the connection's dbname may be an alias)."""
    row = conn.execute("SELECT current_database()").fetchone()
    return str(row[0]) if row else ""


def server_label(conn: psycopg.Connection[tuple[Any, ...]]) -> str:
    """host:port of the server, without credentials: which server a manifest's backup is of."""
    host = conn.info.host
    return f"{host}:{conn.info.port}" if host and not host.startswith("/") else f"local:{host}"


# -- the backup's snapshot -------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """What the exported snapshot shows; pg_dump reads the same, so the manifest is true."""

    id: str  # for pg_dump --snapshot
    database: str
    size_bytes: int
    server_version: str
    server: str
    server_major: int
    versions: tuple[str, ...]
    log_id: int
    objects: tuple[SchemaObject, ...]


def begin_snapshot(conn: psycopg.Connection[tuple[Any, ...]], schema: str) -> Snapshot:
    """Open a read-only repeatable-read transaction, export its snapshot, and read it.

    The transaction stays open (``end_snapshot`` ends it): an exported snapshot only lives as
    long as the transaction that exported it, and pg_dump must be able to import it.
    """
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    row = conn.execute(
        "SELECT pg_export_snapshot(), current_database(),"
        " pg_database_size(current_database()), current_setting('server_version')"
    ).fetchone()
    assert row is not None
    versions, log_id = history_snapshot(conn, schema)
    return Snapshot(
        id=str(row[0]),
        database=str(row[1]),
        size_bytes=int(str(row[2])),
        server_version=str(row[3]),
        server=server_label(conn),
        server_major=conn.info.server_version // 10000,
        versions=versions,
        log_id=log_id,
        objects=inventory(conn),
    )


def end_snapshot(conn: psycopg.Connection[tuple[Any, ...]]) -> None:
    """End the snapshot's read-only transaction; a broken session has nothing to end."""
    import psycopg

    if conn.closed:
        return
    with contextlib.suppress(psycopg.Error):
        conn.execute("ROLLBACK")


# -- pgshift's history, read for backups -----------------------------------------------------------


def _has_table(conn: psycopg.Connection[tuple[Any, ...]], schema: str, table: str) -> bool:
    row = conn.execute(
        "SELECT to_regclass(format('%%I.%%I', %s::text, %s::text)) IS NOT NULL", (schema, table)
    ).fetchone()
    return bool(row and row[0])


def history_snapshot(
    conn: psycopg.Connection[tuple[Any, ...]], schema: str
) -> tuple[tuple[str, ...], int]:
    """(applied versions, newest log id) of pgshift's tables, empty when they do not exist."""
    from psycopg import sql

    row = conn.execute(
        "SELECT to_regclass(format('%%I.applied', %s::text)) IS NOT NULL,"
        " to_regclass(format('%%I.log', %s::text)) IS NOT NULL",
        (schema, schema),
    ).fetchone()
    versions: tuple[str, ...] = ()
    log_id = 0
    if row and row[0]:
        versions = tuple(
            str(r[0])
            for r in conn.execute(
                sql.SQL("SELECT version FROM {}.applied ORDER BY version").format(
                    sql.Identifier(schema)
                )
            )
        )
    if row and row[1]:
        got = conn.execute(
            sql.SQL("SELECT coalesce(max(id), 0) FROM {}.log").format(sql.Identifier(schema))
        ).fetchone()
        log_id = int(got[0]) if got else 0
    return versions, log_id


def last_applying_run(conn: psycopg.Connection[tuple[Any, ...]], schema: str) -> str | None:
    """The run id of the newest run that applied a migration, from the history log."""
    from psycopg import sql

    if not _has_table(conn, schema, "log"):
        return None
    row = conn.execute(
        sql.SQL(
            "SELECT run_id::text FROM {}.log WHERE event = 'migration_applied'"
            " AND run_id IS NOT NULL ORDER BY id DESC LIMIT 1"
        ).format(sql.Identifier(schema))
    ).fetchone()
    return str(row[0]) if row else None


def log_rows_after(
    conn: psycopg.Connection[tuple[Any, ...]], schema: str, log_id: int
) -> list[tuple[Any, ...]]:
    """History log rows written after the backup: the restore keeps them (the audit trail)."""
    from psycopg import sql

    if not _has_table(conn, schema, "log"):
        return []
    return conn.execute(
        sql.SQL(
            "SELECT id, at, run_id, event, version, pid, db_user, detail::text"
            " FROM {}.log WHERE id > %s ORDER BY id"
        ).format(sql.Identifier(schema)),
        (log_id,),
    ).fetchall()


# -- the restore's SQL -----------------------------------------------------------------------------

#: Constraints first (they tie tables together), then dependents before what they use.
_DROP_RANK = {
    "constraint": 0,
    "index": 1,
    "view": 2,
    "materialized view": 2,
    "table": 3,
    "foreign table": 3,
    "sequence": 4,
    "function": 5,
    "procedure": 5,
    "aggregate": 4,
    "domain": 6,
    "type": 6,
    "extension": 7,
    "schema": 8,
}


def drop_statements(objects: Sequence[SchemaObject]) -> list[str]:
    """The inventory's DROP statements for ``objects``, in an order in which they all succeed."""
    ordered = sorted(objects, key=lambda o: (_DROP_RANK.get(o.kind, 9), o.identity))
    return [f"{o.drop};" for o in ordered]


def restore_epilogue(
    conn: psycopg.Connection[tuple[Any, ...]],
    *,
    schema: str,
    backup_objects: Sequence[SchemaObject],
    later_log: Sequence[tuple[Any, ...]],
    run_id: str | None,
    detail: dict[str, Any],
) -> list[str]:
    """SQL run after the archive, in the same transaction: keep the log, record the restore.

    Empty when the backup predates pgshift's tables: there is nothing to record the restore in.
    """
    from psycopg import sql

    log_name = f"{quote_ident(conn, schema)}.log"
    if not any(o.kind == "table" and o.identity == log_name for o in backup_objects):
        return []
    log = sql.SQL("{}.log").format(sql.Identifier(schema))
    statements: list[str] = []
    for row in later_log:
        statements.append(
            sql.SQL(
                "INSERT INTO {} (id, at, run_id, event, version, pid, db_user, detail)"
                " VALUES ({}) ON CONFLICT (id) DO NOTHING;"
            )
            .format(log, sql.SQL(", ").join(sql.Literal(v) for v in row))
            .as_string(conn)
        )
    statements.append(
        sql.SQL("SELECT pg_catalog.setval(pg_catalog.pg_get_serial_sequence({}, 'id'), {});")
        .format(
            sql.Literal(log_name),
            sql.SQL("(SELECT greatest(max(id), 1) FROM {})").format(log),
        )
        .as_string(conn)
    )
    statements.append(
        sql.SQL("INSERT INTO {} (run_id, event, detail) VALUES ({}, 'restore', {});")
        .format(log, sql.Literal(run_id), sql.Literal(json.dumps(detail)))
        .as_string(conn)
    )
    return statements
