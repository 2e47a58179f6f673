"""`validate --trace`: the locks each pending statement really took and the tables it rewrote.

Why it is shaped this way: a linter predicts; the server knows. The pending migrations run on
a scratch database (created and dropped here, never the target): its schema is the target's,
copied with `ops.backup.copy_schema` together with the history rows, so that the migrations
pending on the target are the ones traced; with no target, every migration is pending and
each is traced on the database the ones before it built. Each statement runs in a transaction
of its own (db/trace.py reads ``pg_locks`` before its COMMIT, and ``relfilenode`` around it);
a statement PostgreSQL refuses in a transaction runs alone and shows the locks it is
documented to take. Then the prediction (source/locks.py and the rules that fired on the
statement, with their ``blocks`` and rewrite claims) is compared with what was seen, and every
difference is a `trace-disagrees` finding with both sides in its message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from pgshift.db.scratch import ScratchServer
from pgshift.db.target import Target
from pgshift.db.trace import HeldLock, Observation, observe
from pgshift.lint.finding import Finding
from pgshift.lint.registry import load_rules
from pgshift.plan import plan_up
from pgshift.source.locks import statement_locks

if TYPE_CHECKING:
    from pgshift.model import Migration, Statement

CODE = "trace-disagrees"
# Lock modes, weakest first (the PostgreSQL manual, "Table-Level Locks").
MODES = (
    "ACCESS SHARE",
    "ROW SHARE",
    "ROW EXCLUSIVE",
    "SHARE UPDATE EXCLUSIVE",
    "SHARE",
    "SHARE ROW EXCLUSIVE",
    "EXCLUSIVE",
    "ACCESS EXCLUSIVE",
)
_STRENGTH = {mode: i for i, mode in enumerate(MODES)}
_BLOCKING = _STRENGTH["SHARE"]  # SHARE and stronger stop writes
# Rules whose finding says the table is rewritten (a new relfilenode), not only scanned.
REWRITE_RULES = frozenset(
    {"add-column-rewrite", "alter-table-rewrite", "change-column-type", "vacuum-full", "cluster"}
)
_TABLE_KINDS = frozenset({"r", "p", "m"})


def sql_mode(pg_locks_mode: str) -> str:
    """``AccessExclusiveLock`` -> ``ACCESS EXCLUSIVE``, as the manual and the lint rules say it."""
    name = pg_locks_mode.removesuffix("Lock")
    words = "".join(f" {ch}" if ch.isupper() else ch for ch in name).split()
    return " ".join(words).upper()


@dataclass(frozen=True)
class TracedLock:
    """A relation lock held by the statement's backend before COMMIT."""

    relation: str  # schema.name
    kind: str  # pg_class.relkind
    mode: str  # ACCESS EXCLUSIVE, SHARE, ...

    def to_json(self) -> dict[str, str]:
        return {"relation": self.relation, "kind": self.kind, "mode": self.mode}


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
    predicted: tuple[str, ...]  # the lock table's "MODE on table" lines
    created: tuple[str, ...] = ()  # tables it created
    error: str | None = None  # the server refused it; the trace stopped here

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
            plan = plan_up(migrations, scratch.read_history())
            traced = _run(scratch, [step.migration for step in plan.steps])
    schema_from = "target" if target_url is not None else "migrations"
    report = TraceReport(tuple(traced), schema_from, made.describe())
    return report, disagreements(report, static)


def _run(scratch: Target, pending: Sequence[Migration]) -> list[TracedStatement]:
    out: list[TracedStatement] = []
    for m in pending:
        for statement in m.statements:
            seen = observe(scratch.session, statement.sql, transactional=statement.transactional)
            out.append(_traced(str(m.path), statement, seen))
            if seen.error is not None:  # the database is not what later statements expect
                return out
    return out


def _traced(file: str, statement: Statement, seen: Observation) -> TracedStatement:
    return TracedStatement(
        file=file,
        line=statement.line,
        column=statement.column,
        sql=statement.sql,
        ran_alone=not seen.observed,
        locks=tuple(_lock(held) for held in seen.locks),
        rewritten=seen.rewritten,
        predicted=statement_locks(statement.sql),
        created=seen.created,
        error=seen.error,
    )


def _lock(held: HeldLock) -> TracedLock:
    return TracedLock(f"{held.schema}.{held.relation}", held.kind, sql_mode(held.mode))


# -- prediction against observation ------------------------------------------------------------


def _predicted_lock(line: str) -> tuple[str, str] | None:
    """``"SHARE on users"`` -> ("SHARE", "users"); None for the descriptive lines."""
    mode, sep, name = line.partition(" on ")
    if not sep or mode not in _STRENGTH or not name or " " in name:
        return None
    return mode, name


def _matches(relation: str, name: str) -> bool:
    """``public.users`` is what ``users`` (unqualified, on the default search path) names."""
    return relation == name or ("." not in name and relation.split(".", 1)[1] == name)


def _strongest(traced: TracedStatement, name: str | None = None) -> str | None:
    modes = [
        lock.mode
        for lock in traced.locks
        if lock.kind in _TABLE_KINDS and (name is None or _matches(lock.relation, name))
    ]
    return max(modes, key=_STRENGTH.__getitem__) if modes else None


def _fired(traced: TracedStatement, static: Sequence[Finding]) -> list[Finding]:
    last = traced.line + traced.sql.count("\n")
    return [f for f in static if f.file == traced.file and traced.line <= f.line <= last]


def _lock_disagreements(traced: TracedStatement) -> list[str]:
    out: list[str] = []
    for line in traced.predicted:
        parsed = _predicted_lock(line)
        if parsed is None:
            continue
        mode, name = parsed
        seen = _strongest(traced, name)
        if seen != mode:
            held = f"{seen} on it" if seen else "no lock on it"
            out.append(f"predicted {mode} on {name}; the server held {held}")
    return out


def _claim_disagreements(traced: TracedStatement, fired: Sequence[Finding]) -> list[str]:
    rules = load_rules()
    out: list[str] = []
    blockers = [f.code for f in fired if f.code in rules and rules[f.code].blocks]
    strongest = _strongest(traced)
    if blockers and not traced.ran_alone and _STRENGTH.get(strongest or "", -1) < _BLOCKING:
        out.append(
            f"{', '.join(blockers)} says it blocks the table; the server held only"
            f" {strongest or 'no table lock'}"
        )
    rewriters = [f.code for f in fired if f.code in REWRITE_RULES]
    if rewriters and not traced.rewritten:
        out.append(f"{', '.join(rewriters)} says it rewrites the table; no table was rewritten")
    if traced.rewritten and not rewriters:
        out.append(f"no rule predicted a rewrite; the server rewrote {', '.join(traced.rewritten)}")
    return out


def disagreements(report: TraceReport, static: Sequence[Finding]) -> list[Finding]:
    """A `trace-disagrees` finding per traced statement whose prediction the server denied.

    Tables created earlier in the same file are left out of the rewrite comparison: the rules
    stay quiet on them on purpose (they are empty), and rewriting an empty table costs nothing.
    """
    rule = load_rules()[CODE]
    found: list[Finding] = []
    created: dict[str, set[str]] = {}
    for traced in report.statements:
        if traced.error is not None:
            continue
        new = created.setdefault(traced.file, set())
        fresh = tuple(t for t in traced.rewritten if t not in new)
        subject = replace(traced, rewritten=fresh)
        problems = [] if traced.ran_alone else _lock_disagreements(subject)
        problems += _claim_disagreements(subject, _fired(traced, static))
        new.update(traced.created)
        if problems:
            found.append(
                Finding(
                    CODE,
                    rule.severity,
                    traced.file,
                    traced.line,
                    traced.column,
                    "; ".join(problems),
                    rule.help,
                )
            )
    return found
