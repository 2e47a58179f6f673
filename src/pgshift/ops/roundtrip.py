"""`validate --roundtrip`: prove each rollback on a scratch database, with `up`'s own runner.

Why it is shaped this way: the round trip used to group and send statements itself, so it
proved a copy of `up`, and the copy could drift from the real thing (retries, timeouts,
statements PostgreSQL refuses in a transaction, the way a failing statement is found). Now every
apply and revert is a one-step Plan executed by `ops.apply.Runner` on a `Target` of the scratch
database, exactly as `up` and `rollback` execute theirs, history writes included. What passes
here is what `up` and `rollback` will do; a failure is the runner's own, named at the file line
of the statement that failed, which ran once.

For every migration, in plan order: fingerprint, apply, revert and check the schema is what it
was before, then apply again and check the schema is what the first apply produced. A migration
without a rollback file (irreversible, and missing-rollback says so unless it is ignored) is
applied and not reverted. A broken step leaves the scratch database in an unknown state, so it is
rebuilt from scratch (every migration up to the current one, in one run) before going on: one bad
rollback does not hide the next one.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pgshift.db.fingerprint import Fingerprint, differences, fingerprint
from pgshift.db.scratch import ScratchDatabase, ScratchServer
from pgshift.db.target import Target
from pgshift.db.tooltables import ToolTable, create_tool_tables
from pgshift.errors import MigrationFailed
from pgshift.lint.finding import Finding
from pgshift.ops.apply import Runner, RunOptions
from pgshift.plan import Plan, Script, plan_pending, plan_revert

if TYPE_CHECKING:
    from pgshift.model import Migration

MAX_DIFF_LINES = 8


@dataclass(frozen=True)
class _Failure:
    """Where and why a runner step failed, read from the runner's MigrationFailed."""

    file: str
    line: int
    column: int
    error: str


class _Scratch:
    """A throw-away database on the scratch server, and the Target the runner uses on it.

    Dropped at the end whatever happens; recreated (under a new name) after a broken step.
    Other tools' tables the migrations refer to (``tool_tables``) are made on each new one.
    """

    def __init__(
        self, server: ScratchServer, options: RunOptions, tool_tables: Sequence[ToolTable] = ()
    ) -> None:
        self.server = server
        self.options = options
        self.tool_tables = tuple(tool_tables)
        self.name = ""
        self.made: ScratchDatabase | None = None
        self.target: Target | None = None

    def create(self) -> Target:
        """A new, empty scratch database (the previous one dropped) and a Target on it."""
        self.drop()
        self.made = self.server.create("roundtrip")
        self.name = self.made.name
        self.target = Target(
            self.made.url,
            schema=self.options.schema,
            purpose="roundtrip",
            runner_lock_wait_ms=self.options.runner_lock_wait_ms,
            allow_pooler=self.options.allow_pooler,
        )
        create_tool_tables(self.target.session, self.tool_tables)
        return self.target

    def drop(self) -> None:
        """Close the Target's sessions and drop the database; best effort."""
        if self.target is not None:
            self.target.close()
            self.target = None
        if self.name and self.made is not None:
            self.name = ""
            self.server.drop(self.made)

    def __enter__(self) -> _Scratch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.drop()


class _Trip:
    """Runs `up`'s Runner on the scratch Target, one plan at a time, and fingerprints it."""

    def __init__(
        self,
        scratch: _Scratch,
        migrations: Sequence[Migration],
        options: RunOptions,
        skip_schemas: Sequence[str],
    ) -> None:
        self.scratch = scratch
        self.migrations = migrations
        self.options = options
        # pgshift's history in the scratch database is the runner's, not the migrations' schema.
        self.skip = tuple(dict.fromkeys((options.schema, *skip_schemas)))
        self.target = scratch.create()

    def fingerprint(self) -> Fingerprint:
        return fingerprint(self.target.session, self.skip)

    def where(self) -> str:
        """``scratch database pgshift_scratch_roundtrip_... on the target's server (...)``."""
        made = self.scratch.made
        return made.describe() if made is not None else "scratch database"

    def apply(self, *ms: Migration) -> _Failure | None:
        """Apply ``ms`` (every migration before them is applied) in one run, planned like `up`."""
        history = self.target.read_history()
        return self._run(plan_pending(self.migrations, history, ms[-1].version))

    def revert(self, m: Migration) -> _Failure | None:
        """Revert ``m`` with its rollback file, planned like `rollback` (plan_revert)."""
        return self._run(plan_revert(self.migrations, self.target.read_history(), (m.version,)))

    def rebuild(self, upto: Sequence[Migration]) -> _Failure | None:
        """A new scratch database with ``upto`` applied: the state before the next migration."""
        self.target = self.scratch.create()
        return self.apply(*upto)

    def _run(self, plan: Plan) -> _Failure | None:
        try:
            Runner(self.target, self.options).run(plan)
        except MigrationFailed as exc:
            step = next((s for s in plan.steps if s.migration.version == exc.version), None)
            if step is None:  # not one of ours (cannot happen with a fresh database): say so
                return _Failure(str(plan.steps[0].script.path), 1, 1, exc.message)
            return _failure_of(exc, step.script)
        return None


def _failure_of(exc: MigrationFailed, script: Script) -> _Failure:
    """The file, line, column and error of the runner's failure, read from its fields.

    The line and column are where the server placed the error inside the failing statement;
    with no statement to blame (the file's time budget ran out) the finding points at the
    file's first line. What the message goes on to say about the migration on the target
    means nothing for a scratch database, so only the reason is kept.
    """
    file = exc.file or str(script.path)
    return _Failure(file, exc.line or 1, exc.column or 1, exc.reason)


def _finding(code: str, file: str, failure: _Failure | None, message: str, help_: str) -> Finding:
    from pgshift.lint.registry import finding_for

    line, column = (failure.line, failure.column) if failure else (1, 1)
    return finding_for(code, file, line, column, message, help=help_)


def _diff_text(expected: Fingerprint, actual: Fingerprint) -> str:
    lines = differences(expected, actual)
    shown = "; ".join(lines[:MAX_DIFF_LINES])
    if len(lines) > MAX_DIFF_LINES:
        shown += f"; and {len(lines) - MAX_DIFF_LINES} more"
    return shown


def roundtrip(
    migrations: Sequence[Migration],
    server: ScratchServer,
    options: RunOptions | None = None,
    *,
    skip_schemas: Sequence[str] = (),
    bad_files: Collection[str] = (),
    tool_tables: Sequence[ToolTable] = (),
) -> list[Finding]:
    """Findings for every migration whose rollback fails, leaves objects, or differs.

    ``server`` is where the scratch databases go (db/scratch.py: the target's own server when
    its role may create one). ``options`` are `up`'s (RunOptions.from_settings): the same
    timeouts and lock retries, and the history schema the runner keeps in the scratch
    database, which the fingerprints leave out together with ``skip_schemas``. ``bad_files``
    have loader errors and are not run. ``tool_tables``: other tools' tables the migrations
    refer to, made on each scratch database first (ops.baseline.tool_tables_for).
    """
    options = options or RunOptions()
    findings: list[Finding] = []
    with _Scratch(server, options, tool_tables) as scratch:
        trip = _Trip(scratch, migrations, options, skip_schemas)
        before = trip.fingerprint()
        for position, m in enumerate(migrations):
            forward = str(m.path)
            if forward in bad_files:
                findings.append(
                    _finding(
                        "apply-failed",
                        forward,
                        None,
                        "round trip stopped here: this file has errors (see invalid-file), so it"
                        " and the migrations after it were not tried",
                        "fix the file, then run validate --roundtrip again",
                    )
                )
                break
            failure = trip.apply(m)
            if failure is not None:
                findings.append(
                    _finding(
                        "apply-failed",
                        forward,
                        failure,
                        f"the migration fails on an empty {trip.where()}: {failure.error};"
                        " the migrations after it were not tried",
                        "fix the migration: it fails the same way on any new database",
                    )
                )
                break
            after = trip.fingerprint()
            if m.rollback is None:  # irreversible: missing-rollback says so, or was silenced
                before = after
                continue
            backward = str(m.rollback.path)
            if backward in bad_files:  # nothing ran: the database is as the apply left it
                findings.append(
                    _finding(
                        "rollback-failed",
                        backward,
                        None,
                        "the rollback was not tried: the file has errors (see invalid-file)",
                        "fix the rollback file",
                    )
                )
                before = after
                continue
            problem = _check_rollback(trip, m, backward, before, after)
            if problem is None:
                before = after
                continue
            findings.append(problem)
            # Unknown state: rebuild the scratch database up to and including this migration.
            if trip.rebuild(migrations[: position + 1]) is not None:
                break  # cannot rebuild; what was found stands
            before = trip.fingerprint()
    return findings


def _check_rollback(
    trip: _Trip, m: Migration, backward: str, before: Fingerprint, after: Fingerprint
) -> Finding | None:
    """Revert, compare with ``before``, re-apply, compare with ``after``; the first problem."""
    failure = trip.revert(m)
    if failure is not None:
        return _finding(
            "rollback-failed",
            backward,
            failure,
            f"the rollback fails right after its migration was applied: {failure.error}",
            "fix the rollback SQL; try it with `pgshift rollback dry-run --simulate`",
        )
    reverted = trip.fingerprint()
    if reverted != before:
        return _finding(
            "rollback-incomplete",
            backward,
            None,
            "after the rollback the schema is not what it was before the migration: "
            + _diff_text(before, reverted),
            "undo every object the migration creates or changes, newest first",
        )
    failure = trip.apply(m)
    if failure is not None:
        return _finding(
            "reapply-mismatch",
            str(m.path),
            failure,
            f"applying the migration again after its rollback fails: {failure.error}",
            "the rollback leaves something the migration does not expect; undo it completely",
        )
    again = trip.fingerprint()
    if again != after:
        return _finding(
            "reapply-mismatch",
            str(m.path),
            None,
            "applying the migration again after its rollback gives another schema: "
            + _diff_text(after, again),
            "make the rollback restore exactly the state the migration starts from",
        )
    return None
