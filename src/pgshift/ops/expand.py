"""Expand and contract (SPEC 15): the phases of `@expand-contract` migrations planned on a
target, later migrations kept off an expanded table, and `pgshift contract` run.

The phases are values (rewrite/expand.py) on the plan's steps, so `--dry-run` shows them and
the runner executes them like any statements, under its exactly-once journal, lock retries
and fence; this module only reads the catalog facts they derive from and composes the verb.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

from pgshift.errors import InputError, Problem
from pgshift.plan import Plan, contract_plan, expanded_record
from pgshift.rewrite.expand import (
    Expansion,
    NotExpandable,
    OldShape,
    changes_of,
    expansion,
    tables_of,
)

if TYPE_CHECKING:
    from pgshift.db.target import Target
    from pgshift.history import History
    from pgshift.model import Migration
    from pgshift.project_files import Project


def expansion_for(migration: Migration, target: Target) -> Expansion | None:
    """The phases of ``migration`` on ``target``, from its statements and the catalog; an
    InputError naming the file and line of a change that cannot be served in two shapes.

    None when none of its tables is on the target yet (a fresh database, or tables an
    earlier migration of the same run creates): no running code uses them, so the migration
    runs as written and is applied, not expanded. A migration some of whose tables exist and
    some not is refused: split it."""
    from pgshift.db.expand import facts_of

    try:
        changes = changes_of(migration.statements)
        tables = tables_of(changes)
        facts = facts_of(target.session, tables)
        if tables and not facts:
            return None
        missing = [t for t in tables if t not in facts]
        if missing:
            line = next(c.line for c in changes if c.table == missing[0])
            raise NotExpandable(
                line,
                f"table {missing[0]} is not on the target yet while other tables of this"
                " migration are: split it, so the new tables' changes run as written",
            )
        header = migration.header
        return expansion(
            migration.version,
            changes,
            facts,
            down=header.expand_down,
            down_line=header.line_of("expand-down"),
            batch_key=header.batch_key,
        )
    except NotExpandable as exc:
        problem = Problem(str(migration.path), exc.line, f"@expand-contract: {exc.message}")
        raise InputError([problem]) from None


def with_expansions(plan: Plan, target: Target, history: History) -> Plan:
    """``plan`` with the phases of its `@expand-contract` apply steps; refuses a pending
    migration that touches a table an expanded migration still serves in two shapes."""
    refuse_touching_expanded(plan, history)
    if not any(s.action == "apply" and s.migration.header.expand_contract for s in plan.steps):
        return plan
    steps = tuple(
        replace(step, expansion=expansion_for(step.migration, target))
        if step.action == "apply" and step.migration.header.expand_contract
        else step
        for step in plan.steps
    )
    return replace(plan, steps=steps)


def undo_half_expansions(plan: Plan, target: Target, history: History) -> Plan:
    """``plan`` whose revert steps of `@expand-contract` migrations stopped part-way in their
    expand run the undo phase, derived again from the catalog as the stopped run derived it
    (its artifacts are left out of the facts), instead of the rollback file, which is
    written for the final shape and would run against a table that never reached it."""
    applied = history.applied_versions()

    def half_expanded(version: str, expand_contract: bool) -> bool:
        return (
            expand_contract
            and version not in applied
            and history.progress_of(version, "apply") is not None
        )

    steps = tuple(
        replace(step, expansion=expansion_for(step.migration, target))
        if step.action == "revert"
        and step.expansion is None
        and half_expanded(step.migration.version, step.migration.header.expand_contract)
        else step
        for step in plan.steps
    )
    return replace(plan, steps=steps)


def expanded_tables(history: History) -> dict[str, str]:
    """{bare table name: version} of every table an expanded migration serves now."""
    found: dict[str, str] = {}
    for row in history.applied:
        record = expanded_record(row) or {}
        tables = record.get("tables") or ()
        for table in tables if isinstance(tables, list | tuple) else ():
            found[str(table).rsplit(".", 1)[-1]] = row.version
    return found


def refuse_touching_expanded(plan: Plan, history: History) -> None:
    """A later migration must not change a table while it is served in two shapes: the old
    and new columns, the trigger and the contract kept in the applied row would no longer
    match it (SPEC 15)."""
    from pgshift.source.references import named_tables

    expanded = expanded_tables(history)
    if not expanded:
        return
    problems = []
    for step in plan.steps:
        if step.action != "apply":
            continue
        m = step.migration
        referred, _ = named_tables((s.sql for s in m.statements), expanded)
        for table in sorted(referred):
            problems.append(
                Problem(
                    str(m.path),
                    1,
                    f"touches {table}, which migration {expanded[table]} still serves in two"
                    f" shapes: run `pgshift contract {expanded[table]}` first",
                )
            )
    if problems:
        raise InputError(problems)


@dataclass(frozen=True)
class OldShapeUse:
    """A session, or a statement pg_stat_statements kept, that names what only the old shape
    of an expanded migration has: code written for the old shape still runs.

    ``statement``: with its constants masked (``$1``), never the application's data. A session
    has ``pid``, ``application_name`` and ``state`` (active: running it now; idle: it was the
    session's last statement); a kept statement has ``calls`` instead.
    """

    version: str
    names: tuple[str, ...]  # schema.table.column, or schema.table for a renamed table
    statement: str
    user: str
    pid: int | None = None
    application_name: str | None = None
    state: str | None = None
    calls: int | None = None


@dataclass(frozen=True)
class ContractCheck:
    """What `pgshift contract --check` found; it changes nothing.

    ``watched``: per expanded migration, the names only its old shape has, which is what is
    looked for (empty for a migration that only changes types: the old and the new code name
    the same columns, and their statements cannot be told apart). ``statements_missing``: why
    pg_stat_statements was not read, None when it was (``statements_reset_at``: the start of
    what it kept). ``unreadable``: sessions whose statement could not be parsed (cut short by
    track_activity_query_size, or hidden from this role).
    """

    watched: tuple[tuple[str, tuple[str, ...]], ...]
    sessions: tuple[OldShapeUse, ...] = ()
    statements: tuple[OldShapeUse, ...] = ()
    statements_missing: str | None = None
    statements_reset_at: datetime | None = None
    unreadable: int = 0

    @property
    def in_use(self) -> bool:
        """Whether anything still uses an old shape: then contract would break it."""
        return bool(self.sessions or self.statements)

    @property
    def exit_code(self) -> int:
        """`contract --check`'s exit code: 0 when nothing uses an old shape, else 1."""
        return 1 if self.in_use else 0


def check_contract_for(
    project: Project, target: Target, versions: Sequence[str] = ()
) -> ContractCheck:
    """Whether sessions (and, when it is there, pg_stat_statements) still use the old shape of
    ``versions`` (every expanded migration when empty); reads only. A version that is not
    expanded is a UsageError naming it."""
    from pgshift.db.old_shape import client_sessions, kept_statements
    from pgshift.source.normalize import normalize_query
    from pgshift.source.old_shape import old_names_in

    plan = contract_plan(project.migrations, target.read_history(), versions)
    shapes = [(s.migration.version, s.expansion.old_names) for s in plan.steps if s.expansion]
    watched = tuple((v, _shown_names(old)) for v, old in shapes)
    if not any(old for _, old in shapes):
        return ContractCheck(watched)
    sessions: list[OldShapeUse] = []
    unreadable = 0
    for session in client_sessions(target.session):
        if not session.query.strip():
            continue
        for version, old in shapes:
            names = old_names_in(session.query, old)
            if names is None:
                unreadable += 1
                break
            if names:
                statement = normalize_query(session.query)
                sessions.append(
                    OldShapeUse(
                        version,
                        names,
                        statement,
                        session.user,
                        session.pid,
                        session.application_name,
                        session.state,
                    )
                )
    kept = kept_statements(target.session)
    statements = [
        OldShapeUse(version, names, normalize_query(k.query), k.user, calls=k.calls)
        for k in kept.statements
        for version, old in shapes
        if (names := old_names_in(k.query, old))
    ]
    return ContractCheck(
        watched, tuple(sessions), tuple(statements), kept.missing, kept.reset_at, unreadable
    )


def _shown_names(old: Sequence[OldShape]) -> tuple[str, ...]:
    names: list[str] = []
    for shape in old:
        where = f"{shape.schema}.{shape.table}"
        if shape.table_renamed:
            names.append(where)
        names.extend(f"{where}.{c}" for c in shape.columns)
    return tuple(names)


def plan_contract_for(project: Project, target: Target, versions: Sequence[str] = ()) -> Plan:
    """The contract plan of ``versions`` (every expanded migration when empty) on ``target``:
    empty when nothing is expanded, like `up`'s with nothing pending (a deploy that always runs
    `pgshift contract --yes` finds nothing to do and succeeds); a version named that is not
    expanded is a UsageError naming it."""
    return contract_plan(project.migrations, target.read_history(), versions)
