"""What `up` would do on a target, composed once: the plan, its lint gate and its findings.

`pgshift.plan_up`, `up` and every target of a fleet plan through here. The plan itself is pure
(pgshift.plan); this adds what needs the target (its history, its server's major) and the
project (its `lint_since`). Pre-flight results, when they come, join the plan here too.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from pgshift import plan as planning
from pgshift.errors import PgshiftError

if TYPE_CHECKING:
    from pgshift.db.target import Target
    from pgshift.history import History
    from pgshift.lint.finding import Finding
    from pgshift.model import Migration
    from pgshift.plan import Plan
    from pgshift.project_files import Project


def plan_for(project: Project, target: Target, *, to: str | None = None) -> Plan:
    """The pending migrations of ``project`` on ``target`` (up to ``to``), with their findings.

    Findings: the lint gate's for the target's major (lint_gate refuses a broken
    ``@zero-downtime: true``), less those in migrations up to the project's `lint_since` (an
    adopted history applied here for the first time), plus the applied files' problems and the
    irreversible migrations (file_warnings). Reads, never writes.
    """
    plan = planning.plan_up(
        project.migrations, target.read_history(), to, problems=project.problems
    )
    if not plan.steps:
        return plan
    findings = lint_gate(project.migrations, plan, target.facts.major)
    since = project.settings.lint_since
    if since is not None:
        old = _history_files(plan, since)
        findings = [f for f in findings if f.file not in old]
    findings += file_warnings(plan)
    return replace(plan, findings=tuple(findings))


def _history_files(plan: Plan, since: str) -> set[str]:
    """The files (migration and rollback) of the planned migrations up to ``since``."""
    old = [s.migration for s in plan.steps if s.migration.version <= since]
    files = {str(m.path) for m in old}
    return files | {str(m.rollback.path) for m in old if m.rollback is not None}


def file_warnings(plan: Plan) -> list[Finding]:
    """What `up` warns about but applies: problems in applied migrations' files, and planned
    migrations marked irreversible (SPEC 1)."""
    from pgshift.lint.registry import finding_for
    from pgshift.plan import IRREVERSIBLE

    found = [
        finding_for(
            "applied-file-problem",
            p.file,
            p.line,
            p.column,
            f"{p.message} (an applied migration's file: only a rollback that needs it refuses)",
        )
        for p in plan.warnings
    ]
    for step in plan.steps:
        m = step.migration
        if IRREVERSIBLE in m.header.lint_ignore and (
            m.rollback is None or any(p.file == str(m.rollback.path) for p in plan.warnings)
        ):
            found.append(
                finding_for(
                    "irreversible",
                    str(m.path),
                    m.header.line_of("lint-ignore"),
                    1,
                    f"migration {m.name} is marked irreversible: `pgshift rollback` cannot"
                    " revert it (a backup restore can)",
                )
            )
    return found


def lint_gate(migrations: Sequence[Migration], plan: Plan, major: int) -> list[Finding]:
    """Refuse (InputError, exit 2) a planned file whose ``@zero-downtime: true`` is broken.

    Only the planned files (and their rollbacks) are linted; the others are read in plan
    order only for what they did (a validated NOT NULL check counts), which keeps an `up` of
    one new migration over a thousand applied ones from linting all of them again.
    """
    from pgshift.errors import InputError, Problem
    from pgshift.lint.engine import Linter
    from pgshift.project_files import beside

    versions = set(plan.versions)
    planned = {str(step.migration.path) for step in plan.steps}
    planned |= {str(step.migration.rollback.path) for step in plan.steps if step.migration.rollback}
    linted = Linter(major).lint_migrations(migrations, only=versions, helper=beside)
    findings = [f for f in linted if f.file in planned]
    findings.sort(key=lambda f: f.sort_key())
    broken = [f for f in findings if f.code == "zero-downtime-claim"]
    if broken:
        raise InputError(
            [Problem(f.file, f.line, f.message, f.column) for f in broken],
            hint="make the statements safe, or say @zero-downtime: false;"
            " `pgshift validate` shows every finding",
        )
    return findings


class SharedPlanner:
    """Plans for many targets of one project, linting each distinct plan once per server
    major version (a fleet's targets mostly plan the same migrations); safe across threads.

    Its plans carry the lint gate's findings only, as a fleet has always planned.
    """

    def __init__(self, project: Project) -> None:
        self.project = project
        self._lock = threading.Lock()
        self._gates: dict[tuple[int, tuple[str, ...]], list[Finding] | PgshiftError] = {}

    def plan(self, target: Target) -> Plan:
        """The plan of a target the fleet's shared read found work on (or could not read).

        Its session is opened first: the lint gate needs the server's major from it, and the
        history is then read on it rather than over a libpq session of its own (one fewer
        connection per target with work; Target.read_history).
        """
        major = target.facts.major
        plan = self.plan_from(target.read_history())
        return self.linted(plan, major) if plan.steps else plan

    def plan_from(self, history: History) -> Plan:
        """The plan of a history already read (not yet linted: see linted)."""
        project = self.project
        return planning.plan_up(project.migrations, history, None, problems=project.problems)

    def linted(self, plan: Plan, major: int) -> Plan:
        """``plan`` with its lint findings on server ``major``; a refused plan raises."""
        key = (major, plan.versions)
        with self._lock:
            gate = self._gates.get(key)
            if gate is None:
                try:
                    gate = lint_gate(self.project.migrations, plan, key[0])
                except PgshiftError as exc:
                    gate = exc
                self._gates[key] = gate
        if isinstance(gate, PgshiftError):
            raise gate
        return replace(plan, findings=tuple(gate))
