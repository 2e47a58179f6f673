"""Expand and contract (SPEC 15): the phases of `@expand-contract` migrations planned on a
target, later migrations kept off an expanded table, and `pgshift contract` run.

The phases are values (rewrite/expand.py) on the plan's steps, so `--dry-run` shows them and
the runner executes them like any statements, under its exactly-once journal, lock retries
and fence; this module only reads the catalog facts they derive from and composes the verb.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from pgshift.errors import InputError, Problem, UsageError
from pgshift.plan import Plan, contract_plan, expanded_record
from pgshift.rewrite.expand import Expansion, NotExpandable, changes_of, expansion, tables_of

if TYPE_CHECKING:
    from pgshift.db.target import Target
    from pgshift.history import History
    from pgshift.model import Migration
    from pgshift.project_files import Project


def expansion_for(migration: Migration, target: Target) -> Expansion:
    """The phases of ``migration`` on ``target``, from its statements and the catalog; an
    InputError naming the file and line of a change that cannot be served in two shapes."""
    from pgshift.db.expand import facts_of

    try:
        changes = changes_of(migration.statements)
        facts = facts_of(target.session, tables_of(changes))
        return expansion(migration.version, changes, facts, down=migration.header.expand_down)
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
class ContractCheck:
    """What `contract --check` found: sessions still running statements of the old shape."""

    version: str
    old_columns: tuple[str, ...]
    sessions: tuple[tuple[int, str], ...]  # (pid, the statement), the old shape's users


def plan_contract_for(project: Project, target: Target, versions: Sequence[str] = ()) -> Plan:
    """The contract plan of ``versions`` (every expanded migration when empty) on ``target``."""
    plan = contract_plan(project.migrations, target.read_history(), versions)
    if not plan.steps:
        raise UsageError("no migration is expanded: there is nothing to contract")
    return plan
