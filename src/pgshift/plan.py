"""Pure planning: (migrations on disk, history in the database, target) -> what `up` will do.

A Plan is a value: `up --dry-run` prints it and `up` executes exactly it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from pgshift.errors import DriftError, HalfReverted, InputError, Problem, UsageError
from pgshift.history import AppliedMigration, BackfillProgress, History, Progress
from pgshift.lint.finding import Finding
from pgshift.model import Header, Migration, Statement

if TYPE_CHECKING:
    from pgshift.rewrite.expand import Expansion
    from pgshift.rewrite.preflight_light import PreflightResult

APPLIED = "applied"
PENDING = "pending"
FAILED = "failed"
#: Applied in its expand phase: both shapes served until `pgshift contract` (SPEC 15).
EXPANDED = "expanded"
OUT_OF_ORDER = "out-of-order"
DRIFTED = "drifted"
MISSING = "missing"


@dataclass(frozen=True)
class MigrationState:
    """One row of `pgshift status`.

    A half-reverted migration (its rollback stopped after part of the file committed, e.g. an
    index dropped concurrently but not the table) has state ``failed`` and ``half_reverted``
    set. Not ``applied``: its schema is partly gone, which is the lie of issue 8. Not a new
    state: SPEC's states keep their meaning and consumers that know only them must still see
    trouble, and ``failed`` already means "its last attempt stopped; it needs a person". The
    flag and ``detail`` say which attempt (the revert) and which command finishes it.
    """

    version: str
    description: str
    state: str
    migration: Migration | None
    applied: AppliedMigration | None
    running: bool = False  # being applied or reverted right now by a live run (work under way)
    half_reverted: bool = False  # its rollback stopped part-way and no live run is finishing it
    detail: str | None = None  # for a person: what is going on with this row, when unusual
    # An unfinished backfill of this migration (its apply, or its rollback's when applied):
    # running now when ``running``, else stopped until a re-run continues it.
    backfill: BackfillProgress | None = None


@dataclass(frozen=True)
class Script:
    """What a step executes: a migration file or its rollback file."""

    path: Path
    header: Header
    statements: tuple[Statement, ...]
    checksum: str


@dataclass(frozen=True)
class Step:
    """One migration to apply or revert, and where an interrupted earlier attempt left it."""

    migration: Migration
    resume: Progress | None = None
    action: str = "apply"  # or "revert": run the rollback file and forget the applied row
    # An `@expand-contract` migration's phases: "apply" runs its expand, "contract" its
    # contract, "revert" its undo (inside the window) instead of the files' statements.
    expansion: Expansion | None = None

    @property
    def phase(self) -> str | None:
        """Which of the expansion's phases the step runs (None: the files' statements)."""
        if self.expansion is None:
            return None
        return {"apply": "expand", "contract": "contract", "revert": "undo"}[self.action]

    @property
    def kind(self) -> str:
        """``"backfill"``: the file is a `@kind: backfill` and runs as key-range batches, each
        its own transaction (SPEC 14); ``"statements"``: it runs chunk by chunk."""
        m = self.migration
        header = m.header
        if self.action != "apply":
            header = m.rollback.header if m.rollback is not None else header
        if self.expansion is not None:
            return "statements"
        return "backfill" if header.kind == "backfill" else "statements"

    @property
    def script(self) -> Script:
        m = self.migration
        phase = self.phase
        if self.expansion is not None and phase is not None:
            header = replace(m.header, transaction=True, kind=None)
            return Script(m.path, header, self.expansion.statements(phase), m.checksum)
        if self.action == "apply":
            return Script(m.path, m.header, m.statements, m.checksum)
        if m.rollback is None:
            raise UsageError(f"{m.path}: has no rollback file, so it cannot be reverted")
        r = m.rollback
        return Script(r.path, r.header, r.statements, r.checksum)


UP = "up"
REVERT = "revert"
CONTRACT_PLAN = "contract"


@dataclass(frozen=True)
class Plan:
    """What a run will do, and what it was worked out from, so it can be checked again.

    ``kind`` "up" applies pending migrations (up to ``target``); "revert" runs rollback files
    for ``selection`` (newest first). ``migrations`` is the project the plan was made from;
    `replan` recomputes the same kind of plan from fresh history, which is how `apply` checks
    under the lock that nothing changed. ``findings`` are the lint findings of the planned
    files; ``checks`` what a rollback checked before it may run.
    """

    steps: tuple[Step, ...]
    kind: str = UP
    target: str | None = None
    selection: tuple[str, ...] = ()
    migrations: tuple[Migration, ...] = field(default=(), repr=False, compare=False)
    findings: tuple[Finding, ...] = ()
    checks: tuple[RollbackCheck, ...] = ()
    # Applied rows that still hold older pgshift's text checksums; `apply` rewrites them
    # under the runner lock, even for a plan with no steps (legacy_rows).
    checksum_upgrades: tuple[ChecksumUpgrade, ...] = ()
    # Problems in files of applied migrations (an old rollback that no longer parses):
    # warnings for `up`, refusals only for a rollback that needs the file.
    warnings: tuple[Problem, ...] = ()
    # Pre-flight results of the planned apply steps on the target (ops/planning.py), in plan
    # order: a "fail" among them makes `apply` refuse before anything is taken. With
    # ``preflight_skipped`` the checks were not run on purpose, and the run logs so.
    preflight: tuple[PreflightResult, ...] = ()
    preflight_skipped: bool = False
    # The digest of the history the plan was made from (History.digest): a plan with nothing
    # to do is remembered under it (ops/uptodate.py).
    history_digest: str = field(default="", repr=False, compare=False)
    # The newest version applied in that history: a planned migration older than it is
    # applied out of order (what `up` shows beside it).
    newest_applied: str = field(default="", repr=False, compare=False)

    @property
    def versions(self) -> tuple[str, ...]:
        return tuple(s.migration.version for s in self.steps)


def replan(plan: Plan, history: History) -> Plan:
    """The plan of the same kind, from the same project, against ``history``."""
    if plan.kind == REVERT:
        return plan_revert(plan.migrations, history, plan.selection)
    if plan.kind == CONTRACT_PLAN:
        return contract_plan(plan.migrations, history, plan.selection)
    return plan_pending(plan.migrations, history, plan.target)


@dataclass(frozen=True)
class Recheck:
    """How a plan compares with the same plan made again under the lock.

    ``run``: the planned steps still to do, as the fresh history has them (a resume point
    another run moved forward is taken from there). ``done``: planned steps another run
    finished meanwhile (their goal is reached; they are skipped). ``moved``: the steps whose
    resume point another run moved forward, phrased for a person. ``changed``: why the plan
    no longer holds (steps that appeared, or a resume point that went back): then nothing runs.
    """

    run: tuple[Step, ...]
    done: tuple[Step, ...]
    changed: tuple[str, ...]
    moved: tuple[str, ...] = ()


def _done_count(step: Step) -> int:
    return step.resume.statements_done if step.resume else 0


def recheck(planned: Plan, history: History) -> Recheck:
    """Compare ``planned`` with what the same planning gives against ``history`` now.

    A plan overtaken only by progress goes on from where that progress left it: an earlier
    run's session that committed a statement after that run's process died moves a resume
    point forward, and refusing then would make every retry of a deploy fail at random. A
    step is always run as the fresh history has it, so the run's compare-and-set writes start
    from what the database says, not from what the plan remembered.
    """
    fresh = replan(planned, history)
    fresh_by_version = {(s.migration.version, s.action): s for s in fresh.steps}
    planned_versions = {(s.migration.version, s.action) for s in planned.steps}
    run: list[Step] = []
    done: list[Step] = []
    changed: list[str] = []
    moved: list[str] = []
    for step in planned.steps:
        now = fresh_by_version.get((step.migration.version, step.action))
        if now is None:
            done.append(step)
            continue
        was, further = _done_count(step), _done_count(now)
        if further < was:
            changed.append(
                f"{step.migration.name}: another run moved it back from statement {was} to"
                f" {further}"
            )
            continue
        if further > was:
            moved.append(
                f"{step.migration.name}: another run got to statement {further} (planned from"
                f" {was}); going on from there"
            )
        if now.expansion is None and step.expansion is not None:  # derived from the catalog
            now = replace(now, expansion=step.expansion)
        run.append(now)
    for step in fresh.steps:
        if (step.migration.version, step.action) not in planned_versions:
            changed.append(f"{step.migration.name}: now needs to {step.action}, not planned")
    return Recheck(tuple(run), tuple(done), tuple(changed), tuple(moved))


def half_reverted_versions(history: History) -> tuple[str, ...]:
    """Versions still recorded as applied whose rollback file stopped part-way, newest first.

    The runner leaves a `revert` progress row before the first statement of a rollback that
    runs partly outside a transaction, and removes it in the transaction that forgets the
    applied row; both present means the revert began and did not finish.
    """
    applied = history.applied_versions()
    return tuple(
        sorted(
            (
                p.version
                for p in history.in_progress
                if p.action == "revert" and p.version in applied
            ),
            reverse=True,
        )
    )


def half_filled_versions(history: History) -> tuple[str, ...]:
    """Versions never recorded as applied whose backfill committed batches, newest first.

    A `@kind: backfill` migration commits batch by batch and is recorded applied only after
    its last batch; a killed, failed or stopped one is half-applied, with its own progress row
    (SPEC 14) rather than a statement progress row. `up` continues it; a rollback that passes
    over it must revert it first (its rollback file), or the rows it already changed stay
    changed under a schema reverted beneath them, and a later `up` would go on after the last
    batch as if they had not.
    """
    applied = history.applied_versions()
    filled = {b.version for b in history.backfills if b.action == "apply"}
    return tuple(sorted(filled - set(applied), reverse=True))


def finish_revert_command(versions: Sequence[str]) -> str:
    """The command that finishes these half-reverted migrations' rollbacks, and nothing else.

    `rollback safe` selects half-reverted versions first (rollback_selection), so a count of
    exactly how many there are re-runs those rollbacks, resuming after the statements done.
    """
    return "pgshift rollback safe" + (f" --count {len(versions)}" if len(versions) > 1 else "")


def _half_reverted_detail(progress: Progress, total: int | None, command: str) -> str:
    of = f" of {total}" if total is not None else ""
    return (
        f"its rollback stopped after {progress.statements_done}{of} statement(s); the schema is"
        f" partly reverted: run `{command}` to finish it"
    )


def migration_states(
    migrations: Sequence[Migration], history: History, *, run_in_progress: bool = False
) -> list[MigrationState]:
    """Every migration known from files or history, by version, with its state.

    With ``run_in_progress`` (a live runner holds the migration lock), a migration whose only
    sign of trouble is its progress row is being applied now: pending and running, not failed;
    one being reverted now is still applied (its row goes in the rollback's last transaction)
    and running. Without a live run, a revert progress row is a half-revert: failed.
    """
    applied = history.applied_versions()
    newest_applied = max(applied, default="")
    command = finish_revert_command(half_reverted_versions(history))
    rows: list[MigrationState] = []
    for m in migrations:
        row = applied.get(m.version)
        moving = row is None and history.progress_of(m.version) is not None
        running = moving and run_in_progress and m.version not in history.failed
        reverting = None if row is None else history.progress_of(m.version, "revert")
        if reverting is not None and run_in_progress:
            detail = "being reverted by the current run"
            rows.append(
                MigrationState(m.version, m.description, APPLIED, m, row, True, False, detail)
            )
            continue
        if reverting is not None:
            total = len(m.rollback.statements) if m.rollback else None
            detail = _half_reverted_detail(reverting, total, command)
            rows.append(
                MigrationState(m.version, m.description, FAILED, m, row, False, True, detail)
            )
            continue
        if row is not None:
            rows.append(_applied_state(m, row))
            continue
        if running:
            state = PENDING
        elif m.version in history.failed or moving:
            state = FAILED
        elif m.version < newest_applied:
            state = OUT_OF_ORDER
        else:
            state = PENDING
        stopped = _half_expanded_detail(m, history) if state == FAILED and moving else None
        rows.append(
            MigrationState(m.version, m.description, state, m, row, running, detail=stopped)
        )
    on_disk = {m.version for m in migrations}
    for version, row in applied.items():
        if version not in on_disk:
            # Missing stays missing (drift: the file must come back first); a half-revert of it
            # is still flagged so that nobody takes it for a clean applied migration.
            reverting = history.progress_of(version, "revert")
            half = reverting is not None and not run_in_progress
            why = _half_reverted_detail(reverting, None, command) if half and reverting else None
            rows.append(
                MigrationState(version, row.description, MISSING, None, row, False, half, why)
            )
    rows.sort(key=lambda r: r.version)
    return [_with_backfill(r, history, run_in_progress=run_in_progress) for r in rows]


def _with_backfill(
    row: MigrationState, history: History, *, run_in_progress: bool
) -> MigrationState:
    """The row with its unfinished backfill, if any: the apply's while the migration is not
    applied, the rollback's while it is. A live run is taken to be running it unless the
    backfill's last attempt failed (then it waits for a person, or for a re-run to start)."""
    action = "revert" if row.applied is not None else "apply"
    progress = history.backfill_of(row.version, action)
    if progress is None:
        return row
    running = row.running or (run_in_progress and row.version not in history.failed)
    return replace(row, backfill=progress, running=running)


def _half_expanded_detail(m: Migration, history: History) -> str | None:
    """An `@expand-contract` migration whose expand stopped part-way: what finishes it."""
    progress = history.progress_of(m.version, "apply")
    if not m.header.expand_contract or progress is None:
        return None
    return (
        f"its expand phase stopped after {progress.statements_done} statement(s): `pgshift up`"
        " finishes it (or `pgshift rollback emergency` undoes it)"
    )


def backfill_text(progress: BackfillProgress) -> str:
    """`backfilling 43% (2.1M of 4.9M rows)`: how `status` shows a backfill under way."""
    percent = progress.percent
    if percent is None or progress.rows_estimate is None:
        return f"backfilling ({count_text(progress.keys_done)} rows done)"
    of = f"{count_text(progress.keys_done)} of {count_text(progress.rows_estimate)} rows"
    return f"backfilling {int(percent)}% ({of})"


def count_text(n: int) -> str:
    """A count as a person reads it at a glance: 950, 12.3K, 2.1M, 4.0B."""
    for size, unit in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "K")):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def same_statements(row: AppliedMigration, migration: Migration) -> bool:
    """The applied row was made from the statements the file holds now (no drift).

    A row written before checksums covered the parsed statements holds the checksum of the
    file's text; while the text is unchanged that checksum still matches (``text_checksum``),
    so upgrading pgshift never reports false drift; `apply` then rewrites it (legacy_rows).
    """
    if row.checksum == migration.checksum:
        return True
    return bool(migration.text_checksum) and row.checksum == migration.text_checksum


def _applied_state(m: Migration, row: AppliedMigration) -> MigrationState:
    """The row of an applied migration whose file is there: applied, expanded, or drifted."""
    if not same_statements(row, m):
        return MigrationState(m.version, m.description, DRIFTED, m, row)
    if expanded_record(row) is not None:
        detail = "expanded: the old and the new shape are both served; `pgshift contract` ends it"
        return MigrationState(m.version, m.description, EXPANDED, m, row, detail=detail)
    return MigrationState(m.version, m.description, APPLIED, m, row, detail=_noted(row, m))


def expanded_record(row: AppliedMigration | None) -> Mapping[str, object] | None:
    """The expansion an applied row keeps while its migration is expanded, else None."""
    if row is None:
        return None
    record = row.metadata.get("expand")
    if isinstance(record, Mapping) and record.get("phase") == "expanded":
        return record
    return None


def expansion_of(row: AppliedMigration | None) -> Expansion | None:
    """The contract and undo phases of an expanded migration, as its applied row keeps them."""
    record = expanded_record(row)
    if row is None or record is None:
        return None
    from pgshift.rewrite.expand import Expansion  # pglast: only when there is one

    return Expansion.from_record(row.version, record)


def contract_plan(
    migrations: Sequence[Migration], history: History, versions: Sequence[str] = ()
) -> Plan:
    """Contract steps for the expanded migrations among ``versions`` (all when empty), oldest
    first; one whose contract stopped part-way goes on from its progress."""
    by_version = {m.version: m for m in migrations}
    wanted = set(versions)
    steps: list[Step] = []
    for row in sorted(history.applied, key=lambda r: r.version):
        expansion = expansion_of(row)
        if expansion is None or (wanted and row.version not in wanted):
            continue
        migration = by_version.get(row.version)
        if migration is None:
            raise UsageError(f"{row.version} is expanded but its migration file is missing")
        resume = history.progress_of(row.version, "contract")
        steps.append(Step(migration, resume, action="contract", expansion=expansion))
    unknown = sorted(wanted - {s.migration.version for s in steps})
    if unknown:
        applied = {row.version for row in history.applied}

        def state(v: str) -> str:
            if v in applied:
                return "applied, not expanded"
            return "pending" if v in by_version else "no such migration"

        why = [f"{v} ({state(v)})" for v in unknown]
        raise UsageError(
            f"not expanded, nothing to contract: {', '.join(why)}",
            hint="`pgshift status` shows which migrations are expanded",
        )
    return Plan(
        tuple(steps), CONTRACT_PLAN, selection=tuple(versions), migrations=tuple(migrations)
    )


def _noted(row: AppliedMigration, migration: Migration) -> str | None:
    """Information, not drift: the header's annotations differ from those recorded at apply."""
    if not row.metadata:
        return None
    now = migration.header.metadata()
    if dict(row.metadata) == now:
        return None
    changed = sorted(k for k in set(row.metadata) | set(now) if row.metadata.get(k) != now.get(k))
    return "header metadata changed since it was applied: " + ", ".join("@" + k for k in changed)


@dataclass(frozen=True)
class ChecksumUpgrade:
    """An applied row still holding the text checksums of older pgshift, and its new ones."""

    version: str
    old: str
    new: str
    rollback_old: str | None
    rollback_new: str | None


def legacy_rows(migrations: Sequence[Migration], history: History) -> tuple[ChecksumUpgrade, ...]:
    """Applied rows whose stored checksum is the text checksum of the file as it is now.

    Only an exact match of the current file's text qualifies, so a row whose file really
    changed stays drift. The rollback checksum is upgraded alongside when it too is the text
    checksum of the rollback file as it is now.
    """
    applied = history.applied_versions()
    upgrades = []
    for m in migrations:
        row = applied.get(m.version)
        if row is None or not m.text_checksum or m.checksum == m.text_checksum:
            continue
        if row.checksum != m.text_checksum:
            continue
        r = m.rollback
        rollback_new = None
        if r is not None and row.rollback_checksum == r.text_checksum and r.text_checksum:
            rollback_new = r.checksum
        upgrades.append(
            ChecksumUpgrade(
                m.version, row.checksum, m.checksum, row.rollback_checksum, rollback_new
            )
        )
    return tuple(upgrades)


def check_no_drift(states: Sequence[MigrationState]) -> None:
    """Refuse to run when an applied file changed or vanished: it is never silently re-applied."""
    drifted = [s for s in states if s.state in (DRIFTED, MISSING)]
    if not drifted:
        return
    lines = []
    for s in drifted:
        if s.state == DRIFTED and s.migration is not None:
            lines.append(f"{s.migration.path}: changed after it was applied")
        else:
            lines.append(f"{s.version}_{s.description}: applied, but its file is gone")
    raise DriftError(
        "applied migrations do not match their files:\n" + "\n".join(lines),
        hint="restore the original file, or write a new migration for the change",
    )


def check_no_half_revert(history: History) -> None:
    """Refuse to go forward while a rollback is half done (issue 8).

    Its applied row says "applied" but part of its schema is gone, so an `up` that skipped it
    would report success over a missing index. Raises HalfReverted (exit 6: a half-applied
    migration needs recovery), naming the migration and the command that finishes the revert.
    """
    half = half_reverted_versions(history)
    if not half:
        return
    applied = history.applied_versions()
    names = ", ".join(f"{v}_{applied[v].description}" for v in half)
    one = len(half) == 1
    raise HalfReverted(
        f"{'migration' if one else 'migrations'} {names}"
        f" {'is' if one else 'are'} half-reverted: a `pgshift rollback` stopped part-way through"
        f" {'its' if one else 'their'} rollback file, so part of {'its' if one else 'their'}"
        " schema is gone while the history still says applied; nothing was applied, since `up`"
        " would report success over it (if a rollback is running right now, wait for it)",
        version=half[0],
        hint=f"run `{finish_revert_command(half)}` to finish the revert, then `pgshift up` to"
        " apply it again",
    )


IRREVERSIBLE = "missing-rollback"  # the @lint-ignore code that marks a migration irreversible
WAYS_ON = (
    "fix the rollback file, or mark the migration irreversible with"
    " `-- @lint-ignore: missing-rollback` in its header (`up` then applies it with a warning)"
)
#: How to fix each kind of file problem (errors.PROBLEM_KINDS): the hint of `up`'s refusal says
#: what fixes the problems it lists, not another kind's remedy.
FIXES = {
    "name": "name migration files YYYYMMDDHHMMSS_description.sql (`pgshift create` writes them)",
    "read": "save the file as readable UTF-8 text",
    "header": "correct the header line shown (the message says what it accepts)",
    "sql": "fix the SQL at the line shown: PostgreSQL's parser rejects it",
    "transaction": "remove the transaction statement: pgshift runs each migration in its own"
    " transaction (`-- @transaction: false` runs it outside one)",
    "dependency": "make `@dependencies` name migrations that exist (a version or"
    " version_description), with no cycle",
    "duplicate": "give one of the files that share a version a new version",
    "rollback": WAYS_ON,
    "backfill": "keep a backfill file (@kind: backfill) to its one UPDATE, DELETE or"
    " INSERT ... SELECT, as the message says",
    "expand": "move what an @expand-contract migration cannot serve in two shapes to a"
    " migration of its own, as the message says",
}


def fix_hint(problems: Sequence[Problem]) -> str:
    """The hint for a refusal over ``problems``: one remedy per kind of problem among them."""
    kinds = dict.fromkeys(p.kind or "" for p in problems)
    fixes = [FIXES.get(kind, "fix the file at the line shown") for kind in kinds]
    return "; ".join(dict.fromkeys(fixes)) + ". `pgshift validate` checks every file"


def _rollback_file(m: Migration) -> str:
    return (
        str(m.rollback.path) if m.rollback else str(m.path.with_name(f"{m.path.stem}_rollback.sql"))
    )


def gate_files(
    migrations: Sequence[Migration], history: History, problems: Sequence[Problem]
) -> tuple[Problem, ...]:
    """Sort the folder's problems for `up`; raise InputError for those that block it (SPEC 1).

    Blocking: any problem in a file of a migration not applied yet, and a pending migration
    whose way back is missing or broken, unless its header marks it irreversible
    (``@lint-ignore: missing-rollback``). Returned as warnings: problems in files of applied
    migrations (an old rollback that no longer parses refuses only the rollback that needs
    it) and the broken or missing rollback of an irreversible pending migration.
    """
    applied = history.applied_versions()
    owner: dict[str, tuple[Migration, bool]] = {}
    for each in migrations:
        owner[str(each.path)] = (each, False)
        owner[_rollback_file(each)] = (each, True)
    errors: list[Problem] = []
    warnings: list[Problem] = []
    for p in problems:
        found = owner.get(p.file)
        m, is_rollback = found if found is not None else (None, False)
        if m is not None and (
            m.version in applied or (is_rollback and IRREVERSIBLE in m.header.lint_ignore)
        ):
            warnings.append(p)
        elif m is not None and is_rollback:
            why = f"the way back of migration {m.name} is broken: {p.message}"
            errors.append(Problem(p.file, p.line, why, p.column, p.rule, "rollback"))
        else:
            errors.append(p)
    for m in migrations:
        if m.version in applied or m.rollback is not None or IRREVERSIBLE in m.header.lint_ignore:
            continue
        if any(p.file == _rollback_file(m) for p in problems):
            continue  # a rollback file that exists but could not be read: reported above
        name = Path(_rollback_file(m)).name
        errors.append(
            Problem(
                str(m.path), 1, f"migration {m.name} has no way back: {name} is missing",
                kind="rollback",
            )
        )  # fmt: skip
    if errors:
        errors.sort(key=lambda p: (p.file, p.line))
        raise InputError(errors, hint=fix_hint(errors))
    return tuple(warnings)


def plan_pending(
    migrations: Sequence[Migration],
    history: History,
    target: str | None = None,
    *,
    problems: Sequence[Problem] | None = None,
) -> Plan:
    """The pending migrations in dependency order, up to ``target`` and what it needs.

    Refuses a half-reverted migration (HalfReverted) and drift (DriftError) before planning.
    With ``problems`` (the folder's, from the loader), also the file rules of gate_files; the
    plan keeps the problems that are only warnings for `up`. ``None`` skips those rules, for
    re-planning under the lock, which checks only that history did not move.
    """
    check_no_half_revert(history)
    states = migration_states(migrations, history)
    check_no_drift(states)
    warnings = gate_files(migrations, history, problems) if problems is not None else ()
    applied = history.applied_versions()
    pending = [m for m in migrations if m.version not in applied]
    if target is not None:
        by_version = {m.version: m for m in migrations}
        if target not in by_version:
            raise UsageError(f"--target {target}: no migration file has this version")
        wanted: set[str] = set()
        stack = [m.version for m in pending if m.version <= target]
        while stack:
            version = stack.pop()
            if version in wanted or version in applied:
                continue
            wanted.add(version)
            stack.extend(by_version[version].dependencies)
        pending = [m for m in pending if m.version in wanted]
    steps = tuple(Step(m, history.progress_of(m.version, "apply")) for m in pending)
    upgrades = legacy_rows(migrations, history)
    return Plan(
        steps,
        UP,
        target,
        migrations=tuple(migrations),
        checksum_upgrades=upgrades,
        warnings=warnings,
        history_digest=history.digest,
        newest_applied=max(applied, default=""),
    )


# -- rolling back ----------------------------------------------------------------------------------

OK = "ok"
WARNING = "warning"
ERROR = "error"


@dataclass(frozen=True)
class RollbackCheck:
    """One check made before a rollback changes anything; `rollback dry-run` shows them all."""

    name: str  # "rollback-files", "checksums", "dependencies", "half-applied"
    status: str  # "ok", "warning" or "error"; any error refuses the rollback
    detail: str


def _apply_order(row: AppliedMigration) -> tuple[str, str]:
    # ISO text sorts like the timestamps; literals in tests may leave applied_at unset.
    return (row.applied_at.isoformat() if row.applied_at else "", row.version)


STORED_ROLLBACK = "using the rollback SQL stored when it was applied"


def revert_source(
    migration: Migration | None, row: AppliedMigration | None
) -> tuple[Migration | None, tuple[Problem, ...]]:
    """The migration whose rollback a revert of one version runs, and the problems of its text.

    The files on disk win while the rollback file exists (an edit since it was applied is the
    checksums check's warning, as before). When the rollback file is gone, or the migration's
    files altogether (an application downgrade), the rollback text stored with the applied row
    is parsed like the file was; a version whose files are gone gets a stand-in Migration built
    from its row, so a revert Step and the Plan stay plain values. ``None`` (or a migration
    without a rollback) when there is neither a file nor stored SQL.
    """
    if migration is not None and migration.rollback is not None:
        return migration, ()
    if row is None or row.rollback_sql is None:
        return migration, ()
    from pgshift.source.loader import parse_rollback  # the SQL parser: only when needed

    name = f"{row.version}_{row.description}"
    if migration is not None:
        where = migration.path.with_name(f"{migration.path.stem}_rollback.sql")
        script, problems = parse_rollback(where, row.rollback_sql)
        return replace(migration, rollback=script), tuple(problems)
    script, problems = parse_rollback(Path(f"{name}_rollback.sql"), row.rollback_sql)
    stand_in = Migration(
        version=row.version,
        description=row.description,
        path=Path(f"{name}.sql"),
        text="",  # gone; only its checksum is known, from the row
        checksum=row.checksum,
        header=Header(),
        statements=(),
        rollback=script,
    )
    return stand_in, tuple(problems)


def rollback_selection(
    history: History, *, count: int | None = None, to_version: str | None = None
) -> tuple[str, ...]:
    """The versions a rollback reverts: half-reverted ones first, then newest applied first.

    ``count``: the last N applied (in the order they were applied, which is also the order that
    respects their dependencies). ``to_version``: every applied migration newer than it; it stays
    applied, and must be applied, or ``0`` for all.

    A half-reverted migration (its rollback stopped part-way) comes first whatever the order it
    was applied in, so that `rollback safe` with no --count finishes it: the command `status`,
    `health` and `up` name. `to-version` includes it when newer than V, and refuses when it is
    V or older, since V and what it needs cannot be kept applied over a half-dropped schema.
    A half-done backfill (half_filled_versions) comes next: it is the newest change, and the
    migrations before it cannot be reverted under its committed batches. It counts as one.
    """
    if count is not None and to_version is not None:
        raise UsageError("give either --count or --to-version, not both")
    half = half_reverted_versions(history)
    filled = half_filled_versions(history)
    by_order = sorted(history.applied, key=_apply_order, reverse=True)
    applied = [*half, *filled, *(a.version for a in by_order if a.version not in half)]
    if to_version is not None:
        if to_version != "0" and to_version not in history.applied_versions():
            raise UsageError(
                f"version {to_version} is not applied, so there is nothing to roll back to",
                hint="give an applied version (see `pgshift status`), or 0 to revert everything",
            )
        kept = [v for v in half if v <= to_version]
        if kept:
            raise UsageError(
                f"{', '.join(kept)} would stay applied, but its rollback stopped part-way and"
                " its schema is partly reverted",
                hint=f"run `{finish_revert_command(half)}` to finish it first, or roll back to a"
                " version older than it",
            )
        return tuple(v for v in applied if v > to_version)
    wanted = 1 if count is None else count
    if wanted < 1:
        raise UsageError(f"--count {wanted}: give a number of migrations of at least 1")
    if wanted > len(applied):
        raise UsageError(
            f"--count {wanted}: only {len(applied)} migration(s) are applied"
            + (" or half-applied" if filled else ""),
            hint="`pgshift status` lists them",
        )
    return tuple(applied[:wanted])


def dependents_first(versions: Sequence[str], deps: dict[str, tuple[str, ...]]) -> list[str]:
    """Reorder so that no migration is reverted while one that depends on it is still applied.

    Keeps the given order wherever the dependencies allow it.
    """
    from pgshift.graph import dependents_of

    left = list(versions)
    ordered: list[str] = []
    while left:
        for version in left:
            if not dependents_of(deps, version) & (set(left) - {version}):
                ordered.append(version)
                left.remove(version)
                break
        else:  # a cycle; the loader reports it, keep the order we were given
            ordered.extend(left)
            break
    return ordered


def check_rollback(
    migrations: Sequence[Migration],
    history: History,
    versions: Sequence[str],
    problems: Sequence[Problem] = (),
) -> tuple[RollbackCheck, ...]:
    """Everything that must hold before reverting ``versions``, checked without a database.

    ``problems`` are the loader's findings for the folder; only those in the files this rollback
    touches count against it.
    """
    if not versions:
        return (RollbackCheck("selection", OK, "nothing to revert"),)
    by_version = {m.version: m for m in migrations}
    applied = history.applied_versions()
    sources = {v: revert_source(by_version.get(v), applied.get(v)) for v in versions}
    checks = [
        _check_rollback_files(versions, by_version, applied, sources, problems),
        _check_checksums(versions, by_version, applied, sources),
        _check_dependents(migrations, applied, versions),
    ]
    half = _check_half_applied(history)
    if half is not None:
        checks.append(half)
    expanding = _check_half_expanded(by_version, history, versions)
    if expanding is not None:
        checks.append(expanding)
    return tuple(checks)


# A version's revert source (see revert_source): the migration whose rollback runs, and the
# problems of a stored rollback's text.
_Sources = Mapping[str, tuple[Migration | None, tuple[Problem, ...]]]


def _check_rollback_files(
    versions: Sequence[str],
    by_version: Mapping[str, Migration],
    applied: Mapping[str, AppliedMigration],
    sources: _Sources,
    problems: Sequence[Problem],
) -> RollbackCheck:
    """Each version has a rollback to run that parses: error if not, warning if it is stored."""
    files: list[str] = []
    stored: list[str] = []
    for version in versions:
        m = by_version.get(version)
        row = applied.get(version)
        label = m.name if m else f"{version}_{row.description if row else '?'}"
        source, stored_problems = sources[version]
        if source is None:
            files.append(f"{label}: applied, but its migration file is gone")
        elif source.rollback is None:
            files.append(f"{label}: no rollback file ({source.path.stem}_rollback.sql)")
        else:
            if source is not m:
                gone = "its files are gone" if m is None else "its rollback file is gone"
                stored.append(f"{label}: {gone}, {STORED_ROLLBACK}")
            paths = {str(source.rollback.path), str(source.path)}
            files.extend(str(p) for p in (*problems, *stored_problems) if p.file in paths)
    if files:
        return RollbackCheck("rollback-files", ERROR, "; ".join(files))
    if stored:
        return RollbackCheck("rollback-files", WARNING, "; ".join(stored))
    return RollbackCheck("rollback-files", OK, f"{len(versions)} rollback file(s) exist and parse")


def _check_checksums(
    versions: Sequence[str],
    by_version: Mapping[str, Migration],
    applied: Mapping[str, AppliedMigration],
    sources: _Sources,
) -> RollbackCheck:
    """An edit since apply is a warning: the revert may not undo what was really run."""
    changed: list[str] = []
    for version in versions:
        m, row = by_version.get(version), applied.get(version)
        source = sources[version][0]
        if source is None or source.rollback is None or row is None:
            continue
        rollback = source.rollback
        if row.rollback_checksum and row.rollback_checksum not in (
            rollback.checksum,
            rollback.text_checksum,
        ):
            what = rollback.path.name if source is m else f"the stored rollback SQL of {version}"
            changed.append(f"{what} changed since {version} was applied")
        if m is not None and not same_statements(row, m):
            changed.append(f"{m.path.name} changed since it was applied")
    if changed:
        return RollbackCheck("checksums", WARNING, "; ".join(changed))
    return RollbackCheck("checksums", OK, "files unchanged since they were applied")


def _check_dependents(
    migrations: Sequence[Migration],
    applied: Mapping[str, AppliedMigration],
    versions: Sequence[str],
) -> RollbackCheck:
    """Reverting a migration that one staying applied depends on would break that one."""
    from pgshift.graph import dependents_of

    deps = {m.version: m.dependencies for m in migrations}
    staying = set(applied) - set(versions)
    broken = [
        f"{dependent} depends on {version} and stays applied"
        for version in versions
        for dependent in sorted(dependents_of(deps, version) & staying)
    ]
    if broken:
        return RollbackCheck(
            "dependencies", ERROR, "; ".join(broken) + " (revert them too, e.g. with to-version)"
        )
    return RollbackCheck("dependencies", OK, "no migration that stays applied depends on these")


def _check_half_expanded(
    by_version: Mapping[str, Migration], history: History, versions: Sequence[str]
) -> RollbackCheck | None:
    """An `@expand-contract` migration whose expand was stopped part-way (a kill) refuses a
    rollback of the migrations beneath it: their rollback files would run under its trigger
    and columns (the one beneath is often the CREATE TABLE it expands), and its own undo
    exists only once it is expanded. Finishing it is the way out: `up` resumes it, and
    `rollback safe` then returns to the old shape keeping every write."""
    applied = history.applied_versions()
    half = [
        p
        for p in history.in_progress
        if p.action == "apply"
        and p.version not in applied
        and p.version not in versions
        and (m := by_version.get(p.version)) is not None
        and m.header.expand_contract
    ]
    if not half:
        return None
    detail = "; ".join(
        f"the expand of {p.version} stopped half-way ({p.statements_done} statement(s) done):"
        " run `pgshift up` to finish it, then `pgshift rollback safe` returns to the old shape"
        " keeping every write"
        for p in half
    )
    return RollbackCheck("half-expanded", ERROR, detail)


def _check_half_applied(history: History) -> RollbackCheck | None:
    """A step stopped half-way is worth a warning; the revert resumes or finishes it."""
    half = [
        f"{p.version} stopped half-way ({p.action}, {p.statements_done} statement(s) done)"
        for p in history.in_progress
    ]
    applied = history.applied_versions()
    half.extend(
        f"{b.version}'s backfill stopped half-way ({b.rows_done:,} rows changed in"
        f" {b.batches:,} committed batches, never applied): its rollback file reverts them"
        for b in history.backfills
        if b.action == "apply" and b.version not in applied
    )
    return RollbackCheck("half-applied", WARNING, "; ".join(half)) if half else None


def refuse_on_errors(checks: Sequence[RollbackCheck]) -> None:
    """Raise UsageError listing every failed check; nothing has been changed yet."""
    errors = [c for c in checks if c.status == ERROR]
    if errors:
        raise UsageError(
            "refusing to roll back, nothing was changed:\n"
            + "\n".join(f"{c.name}: {c.detail}" for c in errors),
            hint="`pgshift rollback dry-run` shows every check",
        )


def plan_revert(migrations: Sequence[Migration], history: History, versions: Sequence[str]) -> Plan:
    """Revert steps for those of ``versions`` still applied or half-applied, in that order.

    Used to re-plan under the runner lock: a version another run already reverted drops out.
    A version whose rollback file is gone reverts with the SQL stored when it was applied
    (revert_source), so its step exists even when none of its files do.
    """
    by_version = {m.version: m for m in migrations}
    applied = history.applied_versions()
    steps: list[Step] = []
    for v in versions:
        half_filled = history.backfill_of(v, "apply") is not None
        if v not in applied and history.progress_of(v) is None and not half_filled:
            continue
        source, _ = revert_source(by_version.get(v), applied.get(v))
        expansion = expansion_of(applied.get(v))
        if expansion is not None and v in by_version:  # inside the window: undo the expand
            steps.append(Step(by_version[v], history.progress_of(v, "revert"), "revert", expansion))
        elif source is not None:
            steps.append(Step(source, history.progress_of(v, "revert"), action="revert"))
    return Plan(tuple(steps), REVERT, selection=tuple(versions), migrations=tuple(migrations))


def revert_plan(
    migrations: Sequence[Migration],
    history: History,
    *,
    count: int | None = None,
    to_version: str | None = None,
    problems: Sequence[Problem] = (),
) -> Plan:
    """The revert plan for `rollback safe` / `to-version` with every check's result, refusing
    nothing: `rollback dry-run` shows a plan whose checks failed, and why.

    Raises UsageError only for a selection that makes no sense (more than is applied, an
    unknown version), as `rollback_selection` does.
    """
    versions = rollback_selection(history, count=count, to_version=to_version)
    deps = {m.version: m.dependencies for m in migrations}
    versions = tuple(dependents_first(versions, deps))
    checks = check_rollback(migrations, history, versions, problems)
    return replace(plan_revert(migrations, history, versions), checks=checks)


def plan_safe_rollback(
    migrations: Sequence[Migration],
    history: History,
    *,
    count: int | None = None,
    to_version: str | None = None,
    problems: Sequence[Problem] = (),
) -> Plan:
    """Revert steps for `rollback safe` / `to-version`, after every check has passed.

    The plan carries its checks (``Plan.checks``) so that the caller can show them before
    confirming. Raises UsageError (nothing changed) when a check fails: a rollback file is
    missing or does not parse, or a migration that stays applied depends on one being reverted.
    """
    plan = revert_plan(migrations, history, count=count, to_version=to_version, problems=problems)
    refuse_on_errors(plan.checks)
    return plan


def emergency_selection(
    migrations: Sequence[Migration], history: History, run_id: str | None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """What `rollback emergency` reverts to undo run ``run_id``, and what stays applied.

    Reverted: migrations left half-applied (forwards; a backfill with committed batches too),
    that run's applied migrations, and every
    half-reverted one, whichever run applied it. A half-revert can only start after the last
    `up` (`up` refuses while one exists), so it belongs to the trouble being undone; it cannot
    be kept applied over a half-dropped schema, and only its rollback file finishes it (issue
    8). In dependency order, newest first. Stays applied: everything else.
    """
    applied = history.applied_versions()
    by_order = sorted(history.applied, key=_apply_order, reverse=True)
    from_run = [a.version for a in by_order if run_id is not None and a.run_id == run_id]
    half_applied = sorted(
        {
            *(p.version for p in history.in_progress if p.version not in applied),
            *half_filled_versions(history),
        },
        reverse=True,
    )
    half_reverted = [v for v in half_reverted_versions(history) if v not in from_run]
    deps = {m.version: m.dependencies for m in migrations}
    versions = tuple(dependents_first([*half_applied, *from_run, *half_reverted], deps))
    expected = tuple(sorted(set(applied) - set(versions)))
    return versions, expected
