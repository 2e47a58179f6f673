"""The error tree every part of pgshift raises, each error carrying the exit code the CLI returns.

This module imports nothing from pgshift so that every layer can depend on it.
"""

from __future__ import annotations

from dataclasses import dataclass

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


class PgshiftError(Exception):
    """Root of the errors a user can act on; anything else reaching the CLI is a bug (exit 70)."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        #: What a run had done when it stopped (the facade's RunResult), set by `apply` on the
        #: way out, so `up --json` can print one document with the error inside it.
        self.result: object | None = None


class CheckFailed(PgshiftError):
    """A migration failed and was rolled back, or a check failed."""

    exit_code = 1


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
    """A migration's SQL failed; its transaction was rolled back."""

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        version: str | None = None,
        sqlstate: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.version = version
        self.sqlstate = sqlstate


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
