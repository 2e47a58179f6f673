"""What running a migration's statements can answer: the values the runner and executors share.

Why it is its own pure module: the runner (ops/apply.py) decides what to run, when to retry,
how to resume and what to record; an executor only runs what it is told, once, and says what
the server answered. Keeping the answer a plain value (ServerError, not a driver exception) and
the history write a plain value (HistoryWrite, not SQL) lets the PostgreSQL executor
(db/execute.py) and the in-memory one of the tests stand behind the same contract, so the
runner's decisions are tested without a database as well as with one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pgshift.history import AppliedMigration, Expect, Progress
from pgshift.model import Statement

LOCK_NOT_AVAILABLE = "55P03"
DEADLOCK_DETECTED = "40P01"
SERIALIZATION_FAILURE = "40001"
QUERY_CANCELED = "57014"  # statement_timeout, or a cancel (the in-run monitor's)
#: pgshift's own: a compare-and-set history write found the progress moved (db/schema/0003).
PROGRESS_MOVED = "PGSMV"

#: Errors after which the whole transaction is retried, like a lock timeout: the server rolled
#: it back for reasons of concurrency, not because the migration is wrong.
RETRIED_SQLSTATES = frozenset({LOCK_NOT_AVAILABLE, DEADLOCK_DETECTED, SERIALIZATION_FAILURE})


@dataclass(frozen=True)
class ServerError:
    """The server's answer to a statement it refused.

    ``offset`` is where in the failing statement's text the server placed the error (0-based
    characters), when it said.
    """

    sqlstate: str | None
    message: str  # the primary message, one line
    hint: str | None = None
    offset: int | None = None

    @property
    def canceled(self) -> bool:
        return self.sqlstate == QUERY_CANCELED


class StatementFailed(Exception):
    """``statement`` (None: pgshift's own part of the message, or COMMIT) was refused."""

    def __init__(self, error: ServerError, statement: Statement | None) -> None:
        super().__init__(error.message)
        self.error = error
        self.statement = statement


@dataclass(frozen=True)
class RecordApplied:
    """The applied row, written in the transaction of the migration's last statements."""

    row: AppliedMigration
    expect: Expect | None = None  # the progress the run left (None: not checked)


@dataclass(frozen=True)
class RecordReverted:
    """The applied row removed, written in the transaction of the rollback's last statements."""

    version: str
    run_id: str
    duration_ms: int
    detail: Mapping[str, Any] = field(default_factory=dict)
    expect: Expect | None = None


@dataclass(frozen=True)
class RecordProgress:
    """How far a step got, written in the transaction of the statements it counts."""

    progress: Progress
    expect: Expect | None = None


@dataclass(frozen=True)
class RecordContracted:
    """An expanded migration's contract done: its applied row says so, written in the
    transaction of the contract's last statements."""

    version: str
    run_id: str
    duration_ms: int
    expect: Expect | None = None


HistoryWrite = RecordApplied | RecordReverted | RecordProgress | RecordContracted


@dataclass(frozen=True)
class Transaction:
    """One transaction of a batch (Executor.run_transactions): statements that commit with
    ``write``, bounded by the two timeouts; ``version`` names it for markers and failpoints."""

    statements: Sequence[Statement]
    write: HistoryWrite
    version: str
    lock_timeout_ms: int
    statement_timeout_ms: int


class BatchFailed(Exception):
    """Transaction ``done`` of a batch failed with ``failure``; the ``done`` before it
    committed (``durations``: each one's milliseconds, as the server measured them) and none
    after it ran. ``begun``: whether any statement of the failed one ran before it was
    stopped (False: it was refused at its start, e.g. because the run was asked to stop)."""

    def __init__(
        self, done: int, durations: Sequence[int], failure: StatementFailed, *, begun: bool = True
    ) -> None:
        super().__init__(str(failure))
        self.done = done
        self.durations = tuple(durations)
        self.failure = failure
        self.begun = begun


#: Why a batch's transaction was refused at its start: the run was asked to stop meanwhile.
STOPPED_BEFORE_START = ServerError(QUERY_CANCELED, "not started: the run was asked to stop")


def later_by(write: HistoryWrite, ms: int) -> HistoryWrite:
    """``write`` with ``ms`` more of wall time, for a statement that ran before it was sent.

    A step's duration is the whole wall time of the migration: what ran outside the write's
    own transaction (a statement PostgreSQL refuses in one) counts too.
    """
    if isinstance(write, RecordApplied):
        row = dataclasses.replace(write.row, duration_ms=write.row.duration_ms + ms)
        return dataclasses.replace(write, row=row)
    if isinstance(write, RecordReverted | RecordContracted):
        return dataclasses.replace(write, duration_ms=write.duration_ms + ms)
    return write


@dataclass(frozen=True)
class IndexFacts:
    """An index as the catalog knows it: what a resumed concurrent build or drop must do."""

    schema: str
    name: str
    valid: bool

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


def _never() -> bool:
    return False


class Executor(Protocol):
    """Runs statements on the runner's session, each exactly once, and records with them.

    The contract:
    * ``run_transaction`` runs ``statements`` and commits ``write`` in ONE transaction: both
      or neither. A refusal raises StatementFailed naming the refused statement (None for the
      write or the COMMIT), and nothing of the transaction remains. A write whose ``expect``
      no longer holds is refused with sqlstate PROGRESS_MOVED.
    * ``run_transactions`` runs a batch of such transactions, in order, in ONE round trip:
      each commits on its own, with its write, and returns its duration; the first refusal
      raises BatchFailed, and the transactions after it never run. Once ``stopped`` answers
      True, no transaction of the batch that has not started yet starts (its refusal is
      STOPPED_BEFORE_START, not begun).
    * ``run_alone`` runs one statement outside any transaction (unless ``skip``: it is known
      to be done already), then commits ``write`` on its own. A kill between the two is the
      one window left; the runner closes it from the catalog on resume (``find_index``). A
      refusal of either names the statement; a refused write leaves the statement committed.
    * ``find_index`` resolves an index as the server would (in ``schema``, else on the search
      path); a concurrent build that failed after entering the catalog is found INVALID, and
      ``drop_index`` removes it (an index already gone is no error).

    tests/contract/test_executor.py holds the PostgreSQL executor and the tests' fake to this.
    * Both bound the statements by ``lock_timeout_ms`` and ``statement_timeout_ms``;
      ``version`` names the migration, for failpoints and messages only.
    """

    def run_transaction(
        self,
        statements: Sequence[Statement],
        write: HistoryWrite,
        *,
        version: str,
        lock_timeout_ms: int,
        statement_timeout_ms: int,
    ) -> None: ...

    def run_transactions(
        self, batch: Sequence[Transaction], stopped: Callable[[], bool] = _never
    ) -> list[int]: ...

    def run_alone(
        self,
        statement: Statement,
        write: HistoryWrite,
        *,
        version: str,
        skip: bool,
        lock_timeout_ms: int,
        statement_timeout_ms: int,
    ) -> None: ...

    def find_index(self, schema: str | None, name: str) -> IndexFacts | None: ...

    def drop_index(self, index: IndexFacts) -> None: ...

    def backend_pid(self) -> int: ...

    def cancel(self) -> bool:
        """Cancel the migration statement the server runs now, if one is; called from a signal
        handler (ops/stopping.py). Never cancels a history write: True when a cancel was sent."""
        ...
