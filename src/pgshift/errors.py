"""The error tree every part of pgshift raises, each error carrying the exit code the CLI returns.

This module imports nothing from pgshift so that every layer can depend on it. Errors carry
their facts as fields (where a migration failed, what a run had done), never only as text, so
a caller reads them instead of parsing a message; the few values those fields hold (Problem,
RunResult) are defined here for that reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: Problem.kind values: a bad file name, a file that cannot be read or decoded, a header line,
#: SQL the parser rejects, a transaction statement in a file, a dependency (unknown, mismatched
#: or cyclic), a version used twice, and a migration's way back (rollback file).
PROBLEM_KINDS = (
    "name", "read", "header", "sql", "transaction", "dependency", "duplicate", "rollback"
)  # fmt: skip


@dataclass(frozen=True)
class Problem:
    """One mistake in an input file, located so that an editor can jump to it."""

    file: str
    line: int
    message: str
    column: int = 0
    # The lint rule that reports the same thing, when one does (e.g. "missing-rollback"), so a
    # caller tells problems apart by what they are, never by their wording.
    rule: str | None = None
    # What kind of mistake it is (one of PROBLEM_KINDS), so that the refusal's hint says how to
    # fix this kind rather than another: a syntax error is not a missing rollback.
    kind: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}"
        if self.column:
            where += f":{self.column}"
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class StepResult:
    """What became of one planned step: applied, reverted, skipped, failed or interrupted."""

    version: str
    action: str
    status: str
    duration_ms: int


@dataclass(frozen=True)
class RunResult:
    """What a run did: its id, one result per planned step, and the backup taken before it."""

    run_id: str
    steps: tuple[StepResult, ...]
    backup_id: str | None = None


class PgshiftError(Exception):
    """Root of the errors a user can act on; anything else reaching the CLI is a bug (exit 70)."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        #: What a run had done when it stopped (the steps done, and the failed one), set by the
        #: runner on the way out of any error, so `up --json` prints one document with the error
        #: inside it; None for an error raised outside a run.
        self.result: RunResult | None = None


class CheckFailed(PgshiftError):
    """A migration failed and was rolled back, or a check failed."""

    exit_code = 1


class PreflightFailed(PgshiftError):
    """Pre-flight predicts that a planned statement will fail on the target's data: `up`
    refuses before anything is taken or changed (no backup, no lock, no history row).

    ``results`` are the failing pre-flight results (pgshift.rewrite.preflight_light.PreflightResult:
    file, line, check, table, count, examples, detail), so a caller reads them as fields.
    """

    exit_code = 1

    def __init__(self, message: str, results: Sequence[Any], *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.results = tuple(results)


class UsageError(PgshiftError):
    """Bad command-line usage (unknown flag, missing argument, refused confirmation)."""

    exit_code = 2


class ConfigError(PgshiftError):
    """A setting has a bad value; the message names the variable or flag."""

    exit_code = 2


class InputError(PgshiftError):
    """One or more migration files are wrong; nothing is applied while any is."""

    exit_code = 2

    def __init__(
        self,
        problems: list[Problem] | tuple[Problem, ...],
        *,
        hint: str | None = None,
        where: str = "the migration files",
    ):
        self.problems = tuple(problems)
        lines = [str(p) for p in self.problems]
        head = "1 problem" if len(lines) == 1 else f"{len(lines)} problems"
        super().__init__(f"{head} in {where}:\n" + "\n".join(lines), hint=hint)


class DatabaseUnavailable(PgshiftError):
    """The database cannot be reached (the message never contains a password)."""

    exit_code = 3


class QueryFailed(PgshiftError):
    """The database refused or could not answer a question pgshift asked (the driver's error,
    translated by db/, its text redacted): one health check is then unknown, one monitor sample
    skipped, one backup refused."""

    exit_code = 3


class HistoryAccessDenied(DatabaseUnavailable):
    """The role may not create or use pgshift's history schema; ``grant`` is what it lacks."""

    def __init__(self, message: str, *, schema: str, grant: str, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.schema = schema
        self.grant = grant


class LockBusy(PgshiftError):
    """Another runner holds the migration lock, or the lock was lost."""

    exit_code = 3


class PlanChanged(LockBusy):
    """The database changed between planning and taking the lock: the plan is not run."""


class DriftError(PgshiftError):
    """An applied migration's file changed or disappeared."""

    exit_code = 4


class MigrationFailed(PgshiftError):
    """A migration's SQL failed; its transaction was rolled back.

    Where it failed travels as fields, so `validate --roundtrip` and a library user point at
    the statement without reading the message: ``file`` (the migration or rollback file),
    ``line`` and ``column`` (1-based, where the server placed the error inside the statement,
    else where the statement starts), ``statement_index`` (0-based, in the file). Each is None
    when no statement is to blame (the file's time budget ran out, a stop between statements).
    ``reason`` is what went wrong in one line, without where and without what became of the
    migration (which the message goes on to say).
    """

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        version: str | None = None,
        sqlstate: str | None = None,
        hint: str | None = None,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
        statement_index: int | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.version = version
        self.sqlstate = sqlstate
        self.file = file
        self.line = line
        self.column = column
        self.statement_index = statement_index
        self.reason = reason if reason is not None else (message.splitlines() or [""])[0]


class MigrationTimeout(MigrationFailed):
    """A statement timeout or exhausted lock retries stopped a migration."""

    exit_code = 5


class HalfApplied(MigrationFailed):
    """A non-transactional step failed after earlier steps committed: recovery needed."""

    exit_code = 6


class HalfReverted(HalfApplied):
    """A rollback stopped after part of its file committed, so `up` refuses to run.

    The migration's applied row is still there but its schema is partly gone (an index dropped
    concurrently, the table not yet). Going forward over it would report success over a broken
    schema, so planning refuses with the half-applied exit code (6, recovery needed) and names
    the command that finishes the revert.
    """


class BackupError(PgshiftError):
    """A backup or restore failed."""

    exit_code = 7


class Interrupted(PgshiftError):
    """SIGINT or SIGTERM stopped a run cleanly: nothing is left half-done (SPEC 3).

    The exit code is the shell's for that signal (128 + its number: 130, 143); a stop that
    leaves a step half-applied is a HalfApplied (exit 6) instead, since it needs a re-run.
    """

    def __init__(self, message: str, *, signum: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.signum = signum
        self.exit_code = 128 + signum


BUG_EXIT_CODE = 70


class WaitTimeout(PgshiftError):
    """`pgshift wait` gave up: the database did not reach the project's head in time."""

    exit_code = 5
