"""`validate --trace`: the locks each pending statement really took and the tables it rewrote.

Why it is shaped this way: a linter predicts; the server knows. The pending migrations run on
a scratch database (created and dropped here, never the target): its schema is the target's,
copied with `ops.backup.copy_schema` together with the history rows, so that the migrations
pending on the target are the ones traced; with no target, every migration is pending and
each is traced on the database the ones before it built. Each statement runs in a transaction
of its own (db/trace.py reads ``pg_locks`` before its COMMIT, and ``relfilenode`` around it);
a statement PostgreSQL refuses in a transaction runs alone and shows the locks the lock table
says it takes (which the suite checks by sampling such statements while they wait). Then the
prediction (the lock table through source/locks.py, per relation and for the server's major,
and the rules that fired on the statement, with their ``blocks`` and rewrite claims) is
compared with what was seen, and every difference is a `trace-disagrees` finding with both
sides in its message; `disagreements` says what is left out as an artifact of tracing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from pgshift.db.scratch import ScratchServer
from pgshift.db.target import Target
from pgshift.db.trace import HeldLock, Observation, observe
from pgshift.lint.finding import Finding
from pgshift.lint.registry import finding_for, load_rules
from pgshift.plan import plan_pending
from pgshift.source import lock_table as lt
from pgshift.source.lock_table import MODES, STRENGTH
from pgshift.source.locks import (
    Classified,
    Ref,
    classify,
    compare,
    expected_from,
    expected_locks,
    sql_mode,
    statement_locks,
    strongest,
)

if TYPE_CHECKING:
    from pgshift.model import Migration, Statement

CODE = "trace-disagrees"
_BLOCKING = STRENGTH[lt.SHARE]  # SHARE and stronger stop writes
# Rules whose finding says the table is rewritten (a new relfilenode), not only scanned.
REWRITE_RULES = frozenset(
    {"add-column-rewrite", "alter-table-rewrite", "change-column-type", "vacuum-full", "cluster"}
)
# Rules whose blocking comes from a lock an earlier statement of the transaction took: each
# traced statement runs in a transaction of its own, so the trace cannot see it.
_TRANSACTION_CLAIMS = frozenset({"backfill-in-ddl-transaction"})
# Kinds that block with row locks, which pg_locks shows only to those who wait for them.
_ROW_LOCKING = frozenset({"INSERT", "UPDATE", "DELETE"})
_TABLE_KINDS = frozenset({"r", "p", "m"})


@dataclass(frozen=True)
class TracedLock:
    """A relation lock held by the statement's backend before COMMIT."""

    relation: str  # schema.name, as it was before the statement
    kind: str  # pg_class.relkind
    mode: str  # ACCESS EXCLUSIVE, SHARE, ...
    owner: str | None = None  # the table an index or owned sequence belongs to

    def to_json(self) -> dict[str, str | None]:
        return {
            "relation": self.relation,
            "kind": self.kind,
            "mode": self.mode,
            "owner": self.owner,
        }


@dataclass(frozen=True)
class TracedStatement:
    """One statement as the server ran it, beside what was predicted for it."""

    file: str
    line: int
    column: int
    sql: str
    ran_alone: bool  # outside a transaction: its locks could not be observed
    locks: tuple[TracedLock, ...]  # observed (empty when ran_alone)
    rewritten: tuple[str, ...]  # existing tables that got a new relfilenode
    predicted: tuple[str, ...]  # the lock table's lines, for this server's major
    created: tuple[str, ...] = ()  # tables it created
    error: str | None = None  # the server refused it; the trace stopped here
    # The relations the lock table's roles named on the scratch database, before it ran.
    resolved: tuple[tuple[Ref, tuple[str, ...]], ...] = ()
    major: int | None = None  # the scratch server's major version

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "sql": self.sql,
            "ran_alone": self.ran_alone,
            "locks_observed": not self.ran_alone,
            "locks": [lock.to_json() for lock in self.locks],
            "documented_locks": list(self.predicted) if self.ran_alone else [],
            "predicted_locks": list(self.predicted),
            "rewritten": list(self.rewritten),
            "created": list(self.created),
            "error": self.error,
            "major": self.major,
        }


@dataclass(frozen=True)
class TraceReport:
    """Every traced statement in run order, and where the scratch schema came from."""

    statements: tuple[TracedStatement, ...]
    schema_from: str  # "target" (copied) or "migrations" (built from an empty database)
    scratch: str = ""  # the scratch database and its server ("... on the target's server ...")

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_from": self.schema_from,
            "scratch": self.scratch,
            "statements": [s.to_json() for s in self.statements],
        }


def trace(
    migrations: Sequence[Migration],
    server: ScratchServer,
    *,
    history_schema: str = "pgshift",
    target_url: str | None = None,
    static: Sequence[Finding] = (),
) -> tuple[TraceReport, list[Finding]]:
    """Trace the pending migrations on a scratch database of ``server`` (db/scratch.py).

    ``target_url``: copy its schema and history first (the migrations pending there are
    traced); else every migration is traced from an empty database. ``static`` are the lint
    findings the trace is compared with. Returns the trace and the disagreements.
    """
    from pgshift.ops.backup import copy_schema

    with server.database("trace") as made:
        if target_url is not None:
            copy_schema(target_url, made.url, history_schema=history_schema)
        with Target(made.url, schema=history_schema, purpose="trace") as scratch:
            plan = plan_pending(migrations, scratch.read_history())
            traced = _run(scratch, [step.migration for step in plan.steps])
    schema_from = "target" if target_url is not None else "migrations"
    report = TraceReport(tuple(traced), schema_from, made.describe())
    return report, disagreements(report, static)


def _run(scratch: Target, pending: Sequence[Migration]) -> list[TracedStatement]:
    out: list[TracedStatement] = []
    major = scratch.facts.major
    for m in pending:
        for statement in m.statements:
            refs = [lock.ref for lock in expected_locks(statement.sql)]
            seen = observe(
                scratch.session, statement.sql, transactional=statement.transactional, refs=refs
            )
            out.append(_traced(str(m.path), statement, seen, major))
            if seen.error is not None:  # the database is not what later statements expect
                return out
    return out


def _traced(
    file: str, statement: Statement, seen: Observation, major: int | None = None
) -> TracedStatement:
    return TracedStatement(
        file=file,
        line=statement.line,
        column=statement.column,
        sql=statement.sql,
        ran_alone=not seen.observed,
        locks=tuple(_lock(held) for held in seen.locks),
        rewritten=seen.rewritten,
        predicted=statement_locks(statement.sql, major),
        created=seen.created,
        error=seen.error,
        resolved=tuple(seen.resolved.items()),
        major=major,
    )


def _lock(held: HeldLock) -> TracedLock:
    return TracedLock(f"{held.schema}.{held.relation}", held.kind, sql_mode(held.mode), held.owner)


# -- prediction against observation ------------------------------------------------------------


def _strongest(traced: TracedStatement) -> str | None:
    """The strongest lock on a table (not an index or sequence), None for none."""
    mode = strongest(lock.mode for lock in traced.locks if lock.kind in _TABLE_KINDS)
    return mode or None


def _fired(traced: TracedStatement, static: Sequence[Finding]) -> list[Finding]:
    last = traced.line + traced.sql.count("\n")
    return [f for f in static if f.file == traced.file and traced.line <= f.line <= last]


def _lock_disagreements(traced: TracedStatement, classified: Sequence[Classified]) -> list[str]:
    """The lock table against what the statement's backend held, relation by relation."""
    held: dict[str, str] = {}
    owners: dict[str, str | None] = {}
    for lock in traced.locks:
        held[lock.relation] = strongest((held.get(lock.relation, lt.NONE), lock.mode))
        owners[lock.relation] = lock.owner
    known = bool(classified) and all(c.kind is not None for c in classified)
    return compare(
        expected_from(classified), dict(traced.resolved), held, owners, traced.major, complete=known
    )


def _claim_disagreements(
    traced: TracedStatement, fired: Sequence[Finding], classified: Sequence[Classified]
) -> list[str]:
    rules = load_rules()
    out: list[str] = []
    kinds = {c.kind for c in classified}
    blockers = [
        f.code
        for f in fired
        if f.code in rules and rules[f.code].blocks and f.code not in _TRANSACTION_CLAIMS
    ]
    strongest_held = _strongest(traced)
    own_lock = not kinds or not kinds <= _ROW_LOCKING
    weak = STRENGTH[strongest_held or lt.NONE] < _BLOCKING
    if blockers and own_lock and not traced.ran_alone and weak:
        out.append(
            f"{', '.join(blockers)} says it blocks the table; the server held only"
            f" {strongest_held or 'no table lock'}"
        )
    rewriters = [f.code for f in fired if f.code in REWRITE_RULES]
    if rewriters and not traced.rewritten:
        out.append(f"{', '.join(rewriters)} says it rewrites the table; no table was rewritten")
    new_file = any(c.fact is not None and c.fact.new_file for c in classified)
    if traced.rewritten and not rewriters and not new_file:
        out.append(f"no rule predicted a rewrite; the server rewrote {', '.join(traced.rewritten)}")
    return out


def disagreements(report: TraceReport, static: Sequence[Finding]) -> list[Finding]:
    """A `trace-disagrees` finding per traced statement whose prediction the server denied.

    Not disagreements, because they are how the trace works rather than what the statement
    does: locks on relations the statement itself creates, on catalogs, TOAST and temporary
    relations (db/trace.py never reports them), on an index or sequence of a relation the lock
    table names as strongly (they come with it), weak locks on tables a statement only reads
    or checks, and blocking claims about locks an earlier statement of the file took (each
    statement is traced in a transaction of its own) or about row locks. Tables created
    earlier in the same file are left out of the rewrite comparison: the rules stay quiet on
    them on purpose (they are empty), and rewriting an empty table costs nothing. A statement
    whose kind gives it a new file (TRUNCATE, REFRESH MATERIALIZED VIEW) is no rewrite surprise.
    """
    found: list[Finding] = []
    created: dict[str, set[str]] = {}
    for traced in report.statements:
        if traced.error is not None:
            continue
        classified = classify(traced.sql) or ()
        new = created.setdefault(traced.file, set())
        fresh = tuple(t for t in traced.rewritten if t not in new)
        subject = replace(traced, rewritten=fresh)
        problems = [] if traced.ran_alone else _lock_disagreements(subject, classified)
        problems += _claim_disagreements(subject, _fired(traced, static), classified)
        new.update(traced.created)
        if problems:
            found.append(
                finding_for(CODE, traced.file, traced.line, traced.column, "; ".join(problems))
            )
    return found


__all__ = [
    "MODES",
    "TraceReport",
    "TracedLock",
    "TracedStatement",
    "disagreements",
    "sql_mode",
    "trace",
]
