"""The catalog reads `validate --trace` makes around each statement on a scratch database.

Why it is shaped this way: the locks a statement takes are visible only from its own backend
while its transaction is open, so a traced statement runs between a BEGIN and a COMMIT sent
here, and ``pg_locks`` is read for ``pg_backend_pid()`` before the COMMIT releases them. A
rewrite is a new ``relfilenode`` for a table that existed before, read before and after the
statement (inside the transaction, where the new file is already visible). A statement
PostgreSQL refuses inside a transaction block (CREATE INDEX CONCURRENTLY, VACUUM...) runs alone
in autocommit, where its locks are gone by the time anyone could ask: that is reported as not
observed, and only its rewrites are. Only user relations are reported (the catalogs these
queries read are locked too, by the queries themselves).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

_SYSTEM = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'"

# Tables, materialized views and partitions' leaves have storage; a partitioned parent has none.
_FILENODES = f"""
SELECT n.nspname, c.relname, c.relfilenode
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm') AND {_SYSTEM}
"""

_LOCKS = f"""
SELECT n.nspname, c.relname, c.relkind::text, l.mode
FROM pg_locks l
JOIN pg_class c ON c.oid = l.relation
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted AND {_SYSTEM}
ORDER BY n.nspname, c.relname, l.mode
"""


@dataclass(frozen=True)
class HeldLock:
    """One relation lock the statement's backend held before its COMMIT."""

    schema: str
    relation: str
    kind: str  # pg_class.relkind: r table, i index, p partitioned table, S sequence, v view...
    mode: str  # as pg_locks says it: AccessExclusiveLock, ShareLock, ...


@dataclass(frozen=True)
class Observation:
    """What the server did for one statement."""

    observed: bool  # False: the statement ran alone (autocommit), its locks were not visible
    locks: tuple[HeldLock, ...]
    rewritten: tuple[str, ...]  # "schema.table" of existing tables given a new relfilenode
    created: tuple[str, ...] = ()  # "schema.table" of tables that did not exist before
    error: str | None = None  # the server's error; the statement was rolled back


def _filenodes(conn: psycopg.Connection[Any]) -> dict[str, int]:
    rows = conn.execute(_FILENODES).fetchall()
    return {f"{schema}.{name}": int(node) for schema, name, node in rows}


def _rewritten(before: Mapping[str, int], after: Mapping[str, int]) -> tuple[str, ...]:
    return tuple(sorted(t for t, node in before.items() if t in after and after[t] != node))


def _created(before: Mapping[str, int], after: Mapping[str, int]) -> tuple[str, ...]:
    return tuple(sorted(set(after) - set(before)))


def observe(conn: psycopg.Connection[Any], sql: str, *, transactional: bool) -> Observation:
    """Run ``sql`` on ``conn`` (autocommit) and say what it locked and rewrote.

    ``transactional``: run it in a transaction of its own and read its locks before COMMIT;
    otherwise run it alone. A failing statement is rolled back and its error returned.
    """
    import psycopg

    if not transactional:
        before = _filenodes(conn)
        try:
            conn.execute(sql.encode())
        except psycopg.Error as exc:
            return Observation(False, (), (), error=str(exc).strip())
        after = _filenodes(conn)
        return Observation(False, (), _rewritten(before, after), _created(before, after))
    conn.execute("BEGIN")
    try:
        before = _filenodes(conn)
        conn.execute(sql.encode())
        rows = conn.execute(_LOCKS).fetchall()
        after = _filenodes(conn)
    except psycopg.Error as exc:
        conn.execute("ROLLBACK")
        return Observation(True, (), (), error=str(exc).strip())
    conn.execute("COMMIT")
    locks = tuple(HeldLock(str(s), str(r), str(k), str(m)) for s, r, k, m in rows)
    return Observation(True, locks, _rewritten(before, after), _created(before, after))
