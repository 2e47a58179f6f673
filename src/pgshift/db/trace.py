"""The catalog reads `validate --trace` makes around each statement on a scratch database.

Why it is shaped this way: the locks a statement takes are visible only from its own backend
while its transaction is open, so a traced statement runs between a BEGIN and a COMMIT sent
here, and ``pg_locks`` is read for ``pg_backend_pid()`` before the COMMIT releases them.

Relations are named as they were *before* the statement: the user relations (not catalogs,
TOAST or temporary ones) are listed first, with the table each index or owned sequence belongs
to, so that a relation the statement drops or renames is still named, one it creates is told
apart (it was not there), and an index locked with its table is known to be the table's. The
relations the lock table names only through the catalog ("the table of index i", "the table
constraint c references") are looked up at the same moment, before the statement can drop them.

A rewrite is a new ``relfilenode`` for a table that existed before, read before and after the
statement (inside the transaction, where the new file is already visible). A statement
PostgreSQL refuses inside a transaction block (CREATE INDEX CONCURRENTLY, VACUUM...) runs alone
in autocommit, where its locks are gone by the time anyone could ask: that is reported as not
observed, and only its rewrites are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pgshift.source import locks as lk

if TYPE_CHECKING:
    import psycopg

_USER = (
    "n.nspname NOT IN ('pg_catalog', 'information_schema')"
    " AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'"
)

# Every user relation: its name, kind, file, and the relation an index or owned sequence
# belongs to (an identity or serial sequence: pg_depend's 'a' or 'i' on the table).
_RELATIONS = f"""
SELECT c.oid::int8, n.nspname, c.relname, c.relkind::text, c.relfilenode::int8,
       COALESCE(i.indrelid, d.refobjid, 0)::int8
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_index i ON i.indexrelid = c.oid
LEFT JOIN pg_depend d ON c.relkind = 'S' AND d.classid = 'pg_class'::regclass
     AND d.objid = c.oid AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
WHERE {_USER}
"""

_LOCKS = """
SELECT l.relation::int8, l.mode FROM pg_locks l
WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted
"""

# Another backend's relation locks, those it waits for included (a statement run alone is
# sampled from a second session while it waits).
_LOCKS_OF = """
SELECT l.relation::int8, l.mode FROM pg_locks l WHERE l.pid = %s AND l.locktype = 'relation'
"""

# The catalog lookups of source/locks.py, by Ref.how; %(name)s is the quoted name.
_LOOKUPS = {
    lk.NAMED: "SELECT to_regclass(%(name)s)::oid::int8",
    lk.TABLE_OF_INDEX: "SELECT indrelid::int8 FROM pg_index"
    " WHERE indexrelid = to_regclass(%(name)s)",
    lk.INDEXES_OF: "SELECT indexrelid::int8 FROM pg_index WHERE indrelid = to_regclass(%(name)s)",
    lk.REFERENCED_BY_TABLE: "SELECT confrelid::int8 FROM pg_constraint"
    " WHERE conrelid = to_regclass(%(name)s) AND contype = 'f'",
    lk.REFERENCED_BY_CONSTRAINT: "SELECT confrelid::int8 FROM pg_constraint"
    " WHERE conrelid = to_regclass(%(name)s) AND contype = 'f' AND conname = %(detail)s",
    lk.REFERENCED_BY_COLUMN: "SELECT c.confrelid::int8 FROM pg_constraint c"
    " JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)"
    " WHERE c.conrelid = to_regclass(%(name)s) AND c.contype = 'f' AND a.attname = %(detail)s",
    lk.USING_DOMAIN: "SELECT DISTINCT a.attrelid::int8 FROM pg_attribute a"
    " JOIN pg_class c ON c.oid = a.attrelid"
    " WHERE a.atttypid = to_regtype(%(name)s) AND c.relkind IN ('r', 'p', 'm')"
    " AND NOT a.attisdropped",
}


@dataclass(frozen=True)
class Relation:
    """A user relation as it was before the statement."""

    oid: int
    name: str  # schema.name
    kind: str  # pg_class.relkind: r table, i index, p partitioned table, S sequence, v view...
    filenode: int
    owner: int  # the table an index or owned sequence belongs to; 0 for none


@dataclass(frozen=True)
class HeldLock:
    """One relation lock the statement's backend held before its COMMIT."""

    schema: str
    relation: str
    kind: str  # pg_class.relkind
    mode: str  # as pg_locks says it: AccessExclusiveLock, ShareLock, ...
    owner: str | None = None  # schema.name of the table an index or sequence belongs to


@dataclass(frozen=True)
class Observation:
    """What the server did for one statement."""

    observed: bool  # False: the statement ran alone (autocommit), its locks were not visible
    locks: tuple[HeldLock, ...]  # on relations that existed before it
    rewritten: tuple[str, ...]  # "schema.table" of existing tables given a new relfilenode
    created: tuple[str, ...] = ()  # "schema.table" of tables that did not exist before
    error: str | None = None  # the server's error; the statement was rolled back
    resolved: Mapping[lk.Ref, tuple[str, ...]] = field(default_factory=dict)


def relations(conn: psycopg.Connection[Any]) -> dict[int, Relation]:
    """Every user relation by oid, now."""
    rows = conn.execute(_RELATIONS).fetchall()
    return {
        int(oid): Relation(int(oid), f"{schema}.{name}", str(kind), int(node), int(owner))
        for oid, schema, name, kind, node, owner in rows
    }


def resolve(conn: psycopg.Connection[Any], refs: Sequence[lk.Ref]) -> dict[lk.Ref, tuple[int, ...]]:
    """The oids each Ref names now (none when the relation does not exist)."""
    from psycopg import sql

    out: dict[lk.Ref, tuple[int, ...]] = {}
    for ref in refs:
        name = sql.Identifier(*ref.name).as_string(conn)
        rows = conn.execute(_LOOKUPS[ref.how], {"name": name, "detail": ref.detail}).fetchall()
        out[ref] = tuple(int(r[0]) for r in rows if r[0])
    return out


def held_locks(
    conn: psycopg.Connection[Any], before: Mapping[int, Relation], *, pid: int | None = None
) -> tuple[HeldLock, ...]:
    """The relation locks this backend holds now, on relations in ``before``.

    ``pid``: another backend's instead, the locks it waits for included.
    """
    if pid is None:
        rows = conn.execute(_LOCKS).fetchall()
    else:
        rows = conn.execute(_LOCKS_OF, (pid,)).fetchall()
    out: list[HeldLock] = []
    for oid, mode in rows:
        rel = before.get(int(oid))
        if rel is None:  # a catalog, or a relation the statement created
            continue
        schema, name = rel.name.split(".", 1)
        owner = before.get(rel.owner)
        out.append(HeldLock(schema, name, rel.kind, str(mode), owner.name if owner else None))
    return tuple(sorted(set(out), key=lambda h: (h.schema, h.relation, h.mode)))


def _rewritten(before: Mapping[int, Relation], after: Mapping[int, Relation]) -> tuple[str, ...]:
    return tuple(
        sorted(
            rel.name
            for oid, rel in before.items()
            if rel.kind in ("r", "m") and oid in after and after[oid].filenode != rel.filenode
        )
    )


def _created(before: Mapping[int, Relation], after: Mapping[int, Relation]) -> tuple[str, ...]:
    return tuple(
        sorted(rel.name for oid, rel in after.items() if oid not in before and rel.kind in "rpm")
    )


def observe(
    conn: psycopg.Connection[Any],
    sql: str,
    *,
    transactional: bool,
    refs: Sequence[lk.Ref] = (),
    commit: bool = True,
) -> Observation:
    """Run ``sql`` on ``conn`` (autocommit) and say what it locked and rewrote.

    ``transactional``: run it in a transaction of its own and read its locks before COMMIT;
    otherwise run it alone. ``refs``: the relations the lock table names, looked up before the
    statement runs. ``commit``: False rolls the statement back after reading (the lock table's
    own test keeps its fixture that way). A failing statement is rolled back and its error
    returned.
    """
    import psycopg

    if not transactional:
        before = relations(conn)
        try:
            conn.execute(sql.encode())
        except psycopg.Error as exc:
            return Observation(False, (), (), error=str(exc).strip())
        after = relations(conn)
        return Observation(False, (), _rewritten(before, after), _created(before, after))
    conn.execute("BEGIN")
    try:
        before = relations(conn)
        found = resolve(conn, refs)
        conn.execute(sql.encode())
        locks = held_locks(conn, before)
        after = relations(conn)
    except psycopg.Error as exc:
        conn.execute("ROLLBACK")
        return Observation(True, (), (), error=str(exc).strip())
    conn.execute("COMMIT" if commit else "ROLLBACK")
    resolved = {
        ref: tuple(before[o].name for o in oids if o in before) for ref, oids in found.items()
    }
    return Observation(
        True, locks, _rewritten(before, after), _created(before, after), resolved=resolved
    )
