"""What the server can tell about the statements other code runs: the client sessions of
`pg_stat_activity` and, where it is installed and loaded, what `pg_stat_statements` kept.

`pgshift contract --check` reads these to say whether code written for an expanded
migration's old shape still runs; the parsing and judging happen above (source/old_shape.py,
ops/expand.py). Everything here only reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from pgshift.db.catalog import _SESSION_COLUMNS, _session
from pgshift.model import SessionInfo


@dataclass(frozen=True)
class KeptStatement:
    """One statement `pg_stat_statements` kept for this database: its text as the extension
    normalised it (constants as ``$1``), how often it ran, and the role that ran it."""

    query: str
    calls: int
    user: str


@dataclass(frozen=True)
class KeptStatements:
    """What `pg_stat_statements` could tell: its statements and when they were last reset, or,
    when it could not be read, why (``missing``), for the person reading the check."""

    statements: tuple[KeptStatement, ...] = ()
    reset_at: datetime | None = None
    missing: str | None = None


def client_sessions(conn: psycopg.Connection[tuple[Any, ...]]) -> list[SessionInfo]:
    """Every other client session of this database, with its current statement (active) or its
    last one (idle), except pgshift's own (application_name ``pgshift ...``).

    A role without pg_read_all_stats sees other roles' queries as ``<insufficient
    privilege>``; the caller counts those among the statements it could not read.
    """
    rows = conn.execute(
        f"SELECT {_SESSION_COLUMNS} FROM pg_stat_activity a"
        " WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()"
        " AND a.backend_type = 'client backend'"
        " AND coalesce(a.application_name, '') NOT LIKE 'pgshift %%'"
        " ORDER BY a.pid"
    ).fetchall()
    return [_session(r) for r in rows]


_EXTENSION = """
SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE e.extname = 'pg_stat_statements'
"""

#: Top-level statements only: with pg_stat_statements.track = all, the statements inside
#: functions (the expansion's own synchronising trigger among them) are kept too.
_KEPT = """
SELECT s.query, s.calls, coalesce(r.rolname, '')
FROM {schema}.pg_stat_statements s LEFT JOIN pg_roles r ON r.oid = s.userid
WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND s.toplevel
ORDER BY s.calls DESC
"""


def kept_statements(conn: psycopg.Connection[tuple[Any, ...]]) -> KeptStatements:
    """The statements `pg_stat_statements` kept for this database, or why there are none to
    read: not installed in this database, installed but not loaded (it must be in
    shared_preload_libraries), or not readable by this role."""
    found = conn.execute(_EXTENSION).fetchone()
    if found is None:
        return KeptStatements(
            missing="pg_stat_statements is not installed in this database, so only the"
            " sessions connected now were looked at"
        )
    schema = sql.Identifier(str(found[0]))
    try:
        with conn.transaction():
            rows = conn.execute(sql.SQL(_KEPT).format(schema=schema)).fetchall()
            info = conn.execute(
                sql.SQL("SELECT stats_reset FROM {}.pg_stat_statements_info").format(schema)
            ).fetchone()
    except psycopg.errors.ObjectNotInPrerequisiteState:
        return KeptStatements(
            missing="pg_stat_statements is installed but not loaded (it must be in"
            " shared_preload_libraries), so only the sessions connected now were looked at"
        )
    except psycopg.Error as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return KeptStatements(missing=f"pg_stat_statements could not be read: {first}")
    return KeptStatements(
        tuple(KeptStatement(str(q or ""), int(c), str(u)) for q, c, u in rows),
        info[0] if info else None,
    )


__all__ = ["KeptStatement", "KeptStatements", "client_sessions", "kept_statements"]
