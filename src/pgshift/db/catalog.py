"""Read-only questions to the system catalogs that the runner and health checks ask."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pgshift.execution import IndexFacts
from pgshift.model import (
    BlockedSession,
    ConnectionUse,
    InvalidIndex,
    LockState,
    PoolerProbe,
    Replica,
    SessionInfo,
)

if TYPE_CHECKING:
    import psycopg


#: An index as the catalog knows it; the runner's executor contract uses the same value.
IndexState = IndexFacts


def find_index(
    conn: psycopg.Connection[tuple[Any, ...]], schema: str | None, name: str
) -> IndexState | None:
    """The index ``name`` as PostgreSQL would resolve it (search_path when no schema)."""
    row = conn.execute(
        """
        SELECT n.nspname, c.relname, i.indisvalid
        FROM pg_class c
        JOIN pg_index i ON i.indexrelid = c.oid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relname = %(name)s
          AND CASE WHEN %(schema)s::text IS NULL
                   THEN n.nspname = ANY (current_schemas(false))
                   ELSE n.nspname = %(schema)s::text END
        ORDER BY array_position(current_schemas(false), n.nspname::text) NULLS LAST
        LIMIT 1
        """,
        {"schema": schema, "name": name},
    ).fetchone()
    if row is None:
        return None
    return IndexState(row[0], row[1], bool(row[2]))


def invalid_indexes(conn: psycopg.Connection[tuple[Any, ...]]) -> list[IndexState]:
    """INVALID indexes left by failed concurrent builds (excluding ones still being built)."""
    rows = conn.execute(
        """
        SELECT n.nspname, c.relname
        FROM pg_index i
        JOIN pg_class c ON c.oid = i.indexrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE NOT i.indisvalid
          AND NOT EXISTS (SELECT 1 FROM pg_stat_progress_create_index p WHERE p.index_relid = c.oid)
        ORDER BY 1, 2
        """
    ).fetchall()
    return [IndexState(r[0], r[1], False) for r in rows]


def server_version(conn: psycopg.Connection[tuple[Any, ...]]) -> int:
    return int(conn.info.server_version)


# -- health facts (read-only; `pgshift health` and the in-run monitor) ----------------------------


def invalid_index_details(conn: psycopg.Connection[tuple[Any, ...]]) -> list[InvalidIndex]:
    """INVALID indexes with their table and definition, skipping builds still in progress.

    Names come from the catalogs alone. pg_get_indexdef opens the table, so it would wait
    for (and time out on) the ACCESS EXCLUSIVE lock someone holds on it, which is exactly
    when the report is wanted: it is asked only when no other session holds a lock that
    conflicts, and otherwise the definition is left empty rather than the check unknown.
    """
    rows = conn.execute(
        """
        SELECT n.nspname, c.relname, t.oid::regclass::text,
               CASE WHEN NOT EXISTS (
                   SELECT 1 FROM pg_locks l
                   WHERE l.locktype = 'relation' AND l.relation IN (i.indrelid, i.indexrelid)
                     AND l.mode = 'AccessExclusiveLock' AND l.pid <> pg_backend_pid()
               ) THEN pg_get_indexdef(c.oid) ELSE '' END
        FROM pg_index i
        JOIN pg_class c ON c.oid = i.indexrelid
        JOIN pg_class t ON t.oid = i.indrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE NOT i.indisvalid
          AND NOT EXISTS (SELECT 1 FROM pg_stat_progress_create_index p WHERE p.index_relid = c.oid)
        ORDER BY 1, 2
        """
    ).fetchall()
    return [InvalidIndex(str(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in rows]


_SESSION_COLUMNS = """
    a.pid, coalesce(a.application_name, ''), coalesce(a.usename::text, ''), coalesce(a.state, ''),
    coalesce(a.query, ''),
    (extract(epoch FROM clock_timestamp() - a.xact_start) * 1000)::bigint,
    (extract(epoch FROM clock_timestamp() - a.state_change) * 1000)::bigint
"""


def _session(row: tuple[Any, ...]) -> SessionInfo:
    return SessionInfo(
        int(row[0]),
        str(row[1]),
        str(row[2]),
        str(row[3]),
        str(row[4]),
        None if row[5] is None else int(row[5]),
        None if row[6] is None else int(row[6]),
    )


def blocked_sessions(conn: psycopg.Connection[tuple[Any, ...]]) -> list[BlockedSession]:
    """Sessions of this database waiting on a heavyweight lock, longest wait first.

    The wait starts at `pg_locks.waitstart` (PostgreSQL 14+); older servers only know when the
    statement started, which is an upper bound.
    """
    since = (
        "coalesce(l.waitstart, a.query_start)"
        if conn.info.server_version >= 140000
        else "a.query_start"
    )
    waitstart_col = "waitstart" if conn.info.server_version >= 140000 else "NULL::timestamptz"
    rows = conn.execute(
        f"""
        SELECT {_SESSION_COLUMNS},
               (extract(epoch FROM clock_timestamp() - {since}) * 1000)::bigint,
               coalesce(l.locktype, ''), l.relation::regclass::text, coalesce(l.mode, ''),
               pg_blocking_pids(a.pid)
        FROM pg_stat_activity a
        LEFT JOIN LATERAL (
            SELECT locktype, relation, mode, {waitstart_col} AS waitstart
            FROM pg_locks WHERE pid = a.pid AND NOT granted LIMIT 1
        ) l ON true
        WHERE a.wait_event_type = 'Lock' AND a.datname = current_database()
          AND a.pid <> pg_backend_pid()
        ORDER BY 8 DESC NULLS LAST, a.pid
        """
    ).fetchall()
    return [
        BlockedSession(
            _session(r),
            int(r[7] or 0),
            str(r[8]),
            None if r[9] is None else str(r[9]),
            str(r[10]),
            tuple(int(p) for p in (r[11] or ())),
        )
        for r in rows
    ]


def sessions(conn: psycopg.Connection[tuple[Any, ...]], pids: list[int]) -> dict[int, SessionInfo]:
    """The sessions with these pids (those still connected), to name who blocks whom."""
    if not pids:
        return {}
    rows = conn.execute(
        f"SELECT {_SESSION_COLUMNS} FROM pg_stat_activity a WHERE a.pid = ANY(%s)",
        (pids,),
    ).fetchall()
    return {int(r[0]): _session(r) for r in rows}


def long_transactions(
    conn: psycopg.Connection[tuple[Any, ...]], older_than_ms: int
) -> list[SessionInfo]:
    """Client sessions of this database whose transaction is older than ``older_than_ms``.

    Covers long-running statements (a statement lives inside its transaction) and sessions
    idle in transaction, which hold their locks and the xmin horizon while doing nothing.
    """
    rows = conn.execute(
        f"""
        SELECT {_SESSION_COLUMNS}
        FROM pg_stat_activity a
        WHERE a.xact_start IS NOT NULL AND a.pid <> pg_backend_pid()
          AND a.backend_type = 'client backend' AND a.datname = current_database()
          AND clock_timestamp() - a.xact_start >= make_interval(secs => %s::float8 / 1000)
        ORDER BY a.xact_start
        """,
        (older_than_ms,),
    ).fetchall()
    return [_session(r) for r in rows]


def connection_use(conn: psycopg.Connection[tuple[Any, ...]]) -> ConnectionUse:
    row = conn.execute(
        """
        SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'),
               current_setting('max_connections')::int,
               current_setting('superuser_reserved_connections')::int
               + coalesce(current_setting('reserved_connections', true)::int, 0)
        """
    ).fetchone()
    assert row is not None
    return ConnectionUse(int(row[0]), int(row[1]), int(row[2]))


READ_ONLY_PURPOSES = ("lock", "health", "status", "monitor", "validate")


def migration_lock(conn: psycopg.Connection[tuple[Any, ...]], schema: str) -> LockState | None:
    """The holder of the migration lock of ``schema``, read from `pg_locks`; never takes it."""
    from pgshift.db.lock import lock_key

    unsigned = lock_key(schema) & 0xFFFF_FFFF_FFFF_FFFF
    row = conn.execute(
        f"""
        SELECT {_SESSION_COLUMNS},
               (extract(epoch FROM clock_timestamp() - a.backend_start) * 1000)::bigint,
               (SELECT count(*) FROM pg_stat_activity o
                WHERE o.datname = current_database() AND o.pid <> a.pid
                  AND o.application_name LIKE 'pgshift %%'
                  AND NOT o.application_name = ANY(%(read_only)s))
        FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'advisory' AND l.granted
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND l.classid = %(classid)s::oid AND l.objid = %(objid)s::oid AND l.objsubid = 1
        """,
        {
            "classid": unsigned >> 32,
            "objid": unsigned & 0xFFFF_FFFF,
            "read_only": [f"pgshift {p}" for p in READ_ONLY_PURPOSES],
        },
    ).fetchone()
    if row is None:
        return None
    return LockState(_session(row), int(row[7] or 0), int(row[8]))


def replicas(conn: psycopg.Connection[tuple[Any, ...]]) -> list[Replica]:
    rows = conn.execute(
        """
        SELECT coalesce(application_name, ''), coalesce(state, ''),
               (extract(epoch FROM replay_lag) * 1000)::bigint
        FROM pg_stat_replication ORDER BY 1
        """
    ).fetchall()
    return [Replica(str(r[0]), str(r[1]), None if r[2] is None else int(r[2])) for r in rows]


def probe_pooler(conn: psycopg.Connection[tuple[Any, ...]], rounds: int = 3) -> PoolerProbe:
    """Run statements in separate transactions on one autocommit connection and compare.

    A transaction-mode pooler hands each transaction whichever server connection is free: the
    backend pid changes, or a session setting is lost. Through a lightly loaded pooler both may
    look stable, which is why the announced pid is kept too. Only a custom, namespaced setting
    is set (and reset): nothing in the database changes.
    """
    import uuid

    token = uuid.uuid4().hex
    conn.execute("SELECT set_config('pgshift.health_probe', %s, false)", (token,))
    pids: list[int] = []
    for _ in range(rounds):
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        pids.append(int(row[0]) if row else 0)
    row = conn.execute("SELECT current_setting('pgshift.health_probe', true)").fetchone()
    kept = bool(row and row[0] == token)
    conn.execute("SELECT set_config('pgshift.health_probe', '', false)")
    return PoolerProbe(int(conn.info.backend_pid), tuple(pids), kept)


def last_failures(
    conn: psycopg.Connection[tuple[Any, ...]], schema: str, *, event: str = "migration_failed"
) -> dict[str, dict[str, Any]]:
    """The detail of the newest ``event`` per version (statement, line, error).

    `migration_failed` for applies; `revert_failed` for rollbacks, which a half-reverted
    migration's health detail needs.
    """
    from psycopg import sql

    exists = conn.execute(
        "SELECT to_regclass(format('%%I.log', %s::text)) IS NOT NULL", (schema,)
    ).fetchone()
    if not (exists and exists[0]):
        return {}
    rows = conn.execute(
        sql.SQL(
            "SELECT DISTINCT ON (version) version, at, detail FROM {}.log"
            " WHERE event = %s AND version IS NOT NULL ORDER BY version, id DESC"
        ).format(sql.Identifier(schema)),
        (event,),
    ).fetchall()
    return {str(r[0]): {"at": r[1], **(r[2] or {})} for r in rows}


def round_trip_ms(conn: psycopg.Connection[tuple[Any, ...]], rounds: int = 3) -> float:
    """The median time of ``SELECT 1`` over ``rounds`` round trips, in milliseconds."""
    import time

    trips = []
    for _ in range(rounds):
        started = time.perf_counter()
        conn.execute("SELECT 1").fetchone()
        trips.append((time.perf_counter() - started) * 1000)
    return sorted(trips)[len(trips) // 2]


def server_version_text(conn: psycopg.Connection[tuple[Any, ...]]) -> str:
    row = conn.execute("SELECT current_setting('server_version')").fetchone()
    return str(row[0]) if row else "?"


def bound_session(
    conn: psycopg.Connection[tuple[Any, ...]], statement_ms: int, lock_ms: int, *, local: bool
) -> None:
    """Bound every later query of the session (``local``: of the current transaction only)."""
    conn.execute(
        "SELECT set_config('statement_timeout', %s, %s), set_config('lock_timeout', %s, %s)",
        (f"{statement_ms}ms", local, f"{lock_ms}ms", local),
    )


def cancel_backend(conn: psycopg.Connection[tuple[Any, ...]], pid: int) -> bool:
    """Cancel the statement session ``pid`` is running; True when the signal was sent."""
    row = conn.execute("SELECT pg_cancel_backend(%s)", (pid,)).fetchone()
    return bool(row and row[0])
