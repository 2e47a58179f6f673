"""What `up` would do on a target, composed once: the plan, its lint gate and its findings.

`pgshift.plan_up`, `up` and every target of a fleet plan through here. The plan itself is pure
(pgshift.plan); this adds what needs the target (its history, its server's major) and the
project (its `lint_since`). Pre-flight results (ops/preflight.py) join the plan here too:
read-only checks on the target, before any backup or lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from pgshift import plan as planning
from pgshift.errors import PgshiftError

if TYPE_CHECKING:
    from pgshift.config import Settings
    from pgshift.db.target import Target
    from pgshift.history import History
    from pgshift.lint.finding import Finding
    from pgshift.model import Migration
    from pgshift.plan import Plan
    from pgshift.project_files import Project
    from pgshift.rewrite.preflight import Pending


def plan_for(
    project: Project, target: Target, *, to: str | None = None, preflight: bool = True
) -> Plan:
    """The pending migrations of ``project`` on ``target`` (up to ``to``), with their findings
    and (unless ``preflight`` is False: then marked skipped) their pre-flight results.

    Findings: the lint gate's for the target's major (lint_gate refuses a broken
    ``@zero-downtime: true``), less those in migrations up to the project's `lint_since` (an
    adopted history applied here for the first time), plus the applied files' problems and the
    irreversible migrations (file_warnings). Reads, never writes.
    """
    history = target.read_history()
    plan = planning.plan_pending(project.migrations, history, to, problems=project.problems)
    if not plan.steps:
        return plan
    plan = expanded_on(plan, target, history)
    findings = lint_gate(project.migrations, plan, target.facts.major, project.settings)
    since = project.settings.lint.since
    if since is not None:
        old = _history_files(plan, since)
        findings = [f for f in findings if f.file not in old]
    findings += file_warnings(plan)
    return with_preflight(replace(plan, findings=tuple(findings)), target, run=preflight)


def expanded_on(plan: Plan, target: Target, history: History) -> Plan:
    """``plan`` with the expand phases of its `@expand-contract` migrations derived on
    ``target`` (ops/expand.py), refusing one that touches a table still expanded; pglast and
    the catalog read only when a migration expands or is expanded."""
    if any(s.migration.header.expand_contract for s in plan.steps) or any(
        planning.expanded_record(row) for row in history.applied
    ):
        from pgshift.ops.expand import with_expansions

        return with_expansions(plan, target, history)
    return plan


def with_preflight(
    plan: Plan,
    target: Target,
    *,
    run: bool = True,
    statements: Callable[[Sequence[Migration]], Sequence[Pending]] | None = None,
) -> Plan:
    """``plan`` with the pre-flight results of its apply steps' migrations on ``target``, in
    plan order (read-only, bounded; ops/preflight.py); ``run`` False marks them skipped.

    A step that resumes a stopped migration is left out: its first statements already ran,
    so checks derived from them would judge data the run itself has changed. ``statements``
    turns those migrations into pre-flight's Pending statements (default: anew each call;
    a fleet's SharedPlanner passes its memo). A plan that only creates tables and fills them
    is answered from the loader's table heads (rewrite/preflight_light.py), without pglast.
    """
    if not run:
        return replace(plan, preflight=(), preflight_skipped=True)
    pending = [s.migration for s in plan.steps if s.action == "apply" and s.resume is None]
    if not pending:
        return replace(plan, preflight=())
    from pgshift.rewrite.preflight_light import headed, new_tables_results

    light = new_tables_results(headed(pending))
    if light is not None:  # new tables only: no check, no catalog read, no pglast import
        return replace(plan, preflight=tuple(light))
    from pgshift.ops.preflight import pending_of, preflight_pending

    made = statements(pending) if statements is not None else pending_of(pending)
    return replace(plan, preflight=tuple(preflight_pending(made, target)))


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


def lint_gate(
    migrations: Sequence[Migration], plan: Plan, major: int, settings: Settings | None = None
) -> list[Finding]:
    """Refuse (InputError, exit 2) a planned file whose ``@zero-downtime: true`` is broken.

    Only the planned files (and their rollbacks) are linted; the others are read in plan
    order only for what they did (a validated NOT NULL check counts), which keeps an `up` of
    one new migration over a thousand applied ones from linting all of them again. With
    ``settings``, the project's findings memo (lint/memo.py, the one `validate` keeps) is
    consulted first and fed after: an `up` of files `validate` (or an earlier `up`) already
    linted for this major runs no rule at all.
    """
    from pgshift.errors import InputError, Problem

    versions = set(plan.versions)
    planned = {str(step.migration.path) for step in plan.steps}
    planned |= {str(step.migration.rollback.path) for step in plan.steps if step.migration.rollback}
    linted = _lint_planned(migrations, versions, major, settings)
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


def _lint_planned(
    migrations: Sequence[Migration], versions: set[str], major: int, settings: Settings | None
) -> list[Finding]:
    """The rules' findings of the migrations in ``versions``, from the memo where it has them.

    A migration's memo key chains every earlier migration (lint/memo.py), so a hit is exactly
    what linting it here would find. Fresh findings are stored per migration only when each
    belongs to one of the linted migrations' own files, so a hit never loses one.
    """
    from pgshift.project_files import beside

    if settings is None:
        from pgshift.lint.engine import Linter

        return Linter(major).lint_migrations(migrations, only=versions, helper=beside)
    from pgshift.lint.memo import chain_keys
    from pgshift.project_files import read_lint_memo, write_lint_memo

    ordered = list(migrations)
    keys = chain_keys(ordered, frozenset(), pg_major=major, fixes=True)
    memo = read_lint_memo(settings)
    wanted = [i for i, m in enumerate(ordered) if m.version in versions]
    known = {i: memo.get(keys[i]) for i in wanted}
    missing = [i for i in wanted if known[i] is None]
    findings = [f for i in wanted for f in known[i] or ()]
    if missing:
        from pgshift.lint.engine import Linter  # with pglast and the rules: only now

        fresh = Linter(major).lint_migrations(
            ordered, only={ordered[i].version for i in missing}, helper=beside
        )
        findings += fresh
        by_file: dict[str, int] = {}
        for i in missing:
            m = ordered[i]
            by_file[str(m.path)] = i
            if m.rollback is not None:
                by_file[str(m.rollback.path)] = i
        if all(f.file in by_file for f in fresh):
            grouped: dict[int, list[Finding]] = {i: [] for i in missing}
            for f in fresh:
                grouped[by_file[f.file]].append(f)
            for i, found in grouped.items():
                memo.put(keys[i], found)
            memo.keep_all()  # what `validate` stored for other files or majors stays
            write_lint_memo(settings, memo)
    return findings


class SharedPlanner:
    """Plans for many targets of one project, linting each distinct plan once per server
    major version (a fleet's targets mostly plan the same migrations); safe across threads.

    Its plans carry the lint gate's findings, and each target's own pre-flight results
    (data differs per target; ``preflight`` False skips them).
    """

    def __init__(self, project: Project, *, preflight: bool = True) -> None:
        self.project = project
        self.preflight = preflight
        self._lock = threading.Lock()
        self._gates: dict[tuple[int, tuple[str, ...]], list[Finding] | PgshiftError] = {}
        self._pending: dict[tuple[str, ...], Sequence[Pending]] = {}

    def plan(self, target: Target, history: History | None = None) -> Plan:
        """The plan of a target the fleet's shared read found work on (or could not read).

        Its session is opened first: the lint gate needs the server's major from it. The plan
        is made from ``history``, the fleet's read of this target, when there is one (its run
        checks the plan against the history it reads again under its lock, as `up` does);
        else the history is read on that session rather than over a libpq session of its own
        (one fewer connection per target with work; Target.read_history).
        """
        major = target.facts.major
        if history is None:
            history = target.read_history()
        plan = self.plan_from(history)
        if not plan.steps:
            return plan
        plan = expanded_on(plan, target, history)
        return with_preflight(
            self.linted(plan, major), target, run=self.preflight, statements=self.statements
        )

    def statements(self, migrations: Sequence[Migration]) -> Sequence[Pending]:
        """Pre-flight's Pending statements of ``migrations``, made once per set of versions for
        all targets: each keeps its parse trees (Pending.trees), which every target built again
        (pre-flight's client CPU per fleet target 1.6 -> 1.1 ms; bench/RESULTS.md)."""
        from pgshift.ops.preflight import pending_of

        key = tuple(m.version for m in migrations)
        with self._lock:
            made = self._pending.get(key)
            if made is None:
                made = self._pending[key] = tuple(pending_of(migrations))
        return made

    def plan_from(self, history: History) -> Plan:
        """The plan of a history already read (not yet linted: see linted)."""
        project = self.project
        return planning.plan_pending(project.migrations, history, None, problems=project.problems)

    def linted(self, plan: Plan, major: int) -> Plan:
        """``plan`` with its lint findings on server ``major``; a refused plan raises."""
        key = (major, plan.versions)
        with self._lock:
            gate = self._gates.get(key)
            if gate is None:
                try:
                    gate = lint_gate(self.project.migrations, plan, key[0], self.project.settings)
                except PgshiftError as exc:
                    gate = exc
                self._gates[key] = gate
        if isinstance(gate, PgshiftError):
            raise gate
        return replace(plan, findings=tuple(gate))
