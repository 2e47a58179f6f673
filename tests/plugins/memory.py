"""An in-memory target for the runner: MemoryHistoryStore, a scripted executor and a fake clock.

It keeps the Executor contract of pgshift.execution (a transaction's statements and its
history write commit together or not at all; a statement run alone commits before its write)
and lets a test script the server's answers per statement and attempt, so the runner's
decisions (resume, retry budget, failure recording, the plan re-check) are tested without a
database. What the database itself does is tested against real PostgreSQL elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pgshift.db.lock import LockHolder
from pgshift.execution import (
    PROGRESS_MOVED,
    HistoryWrite,
    IndexFacts,
    RecordApplied,
    RecordProgress,
    RecordReverted,
    ServerError,
    StatementFailed,
)
from pgshift.history import MEMORY_SESSION, History, MemoryHistoryStore, ProgressMoved, Session
from pgshift.model import Statement


class Killed(Exception):
    """The runner process 'dies' at a chosen instant (what SIGKILL is on a real run)."""


@dataclass
class FakeClock:
    """Monotonic time that moves only when the runner sleeps."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class MemoryLock:
    waited_for: LockHolder | None = None
    conn: Session | None = MEMORY_SESSION

    def __init__(self) -> None:
        self.held = False

    def acquire(self, on_wait: Callable[[LockHolder], None] | None = None) -> None:
        self.held = True

    def check(self, every_s: float = 1.0) -> None:
        assert self.held

    def release(self) -> None:
        self.held = False


class ScriptedExecutor:
    """Runs nothing; answers per statement text from ``answers`` (a queue per statement).

    ``None`` in a queue is success; an empty or missing queue is success. CREATE/DROP INDEX
    CONCURRENTLY update ``indexes`` like the catalog would. ``kill_after`` names a statement
    after which the process dies: right after it ran (before its write), for one run alone.
    """

    def __init__(self, store: MemoryHistoryStore) -> None:
        self.store = store
        self.answers: dict[str, list[ServerError | None]] = {}
        self.ran: list[str] = []  # every statement sent to the "server", in order
        self.committed: list[str] = []  # those whose effects stayed
        self.indexes: dict[str, IndexFacts] = {}
        self.dropped: list[str] = []
        self.kill_after: str | None = None
        #: Called with each statement's text as it is sent: a test's signal arrives "during" it.
        self.on_send: Callable[[str], None] | None = None

    def answer(self, sql: str, *outcomes: ServerError | None) -> None:
        self.answers.setdefault(sql, []).extend(outcomes)

    def _send(self, stmt: Statement) -> None:
        self.ran.append(stmt.sql)
        if self.on_send is not None:
            self.on_send(stmt.sql)
        queue = self.answers.get(stmt.sql) or []
        outcome = queue.pop(0) if queue else None
        if outcome is not None:
            raise StatementFailed(outcome, stmt)

    def _write(self, write: HistoryWrite) -> None:
        """The history write; a compare-and-set that no longer holds is the server's PGSMV."""
        try:
            if isinstance(write, RecordApplied):
                self.store.record_applied(None, write.row, expect=write.expect)
            elif isinstance(write, RecordReverted):
                version, run_id, expect = write.version, write.run_id, write.expect
                self.store.record_reverted(None, version, run_id, write.detail, expect=expect)
            elif isinstance(write, RecordProgress):
                self.store.save_progress(None, write.progress, expect=write.expect)
        except ProgressMoved as moved:
            raise StatementFailed(ServerError(PROGRESS_MOVED, str(moved)), None) from None

    def run_transaction(
        self,
        statements: Sequence[Statement],
        write: HistoryWrite,
        *,
        version: str,
        lock_timeout_ms: int,
        statement_timeout_ms: int,
    ) -> None:
        for stmt in statements:
            self._send(stmt)  # a failure leaves nothing: the transaction rolls back
        self._write(write)  # checked before anything counts as committed, like COMMIT
        self.committed.extend(s.sql for s in statements)

    def run_alone(
        self,
        statement: Statement,
        write: HistoryWrite,
        *,
        version: str,
        skip: bool,
        lock_timeout_ms: int,
        statement_timeout_ms: int,
    ) -> None:
        if not skip:
            self._send(statement)
            self.committed.append(statement.sql)
            self._catalog(statement)
        if self.kill_after == statement.sql:
            self.kill_after = None
            raise Killed(statement.sql)
        self._write(write)

    def _catalog(self, stmt: Statement) -> None:
        if stmt.concurrent_index is None:
            return
        name = stmt.concurrent_index[1]
        if stmt.kind == "IndexStmt":
            self.indexes[name] = IndexFacts("public", name, True)
        else:
            self.indexes.pop(name, None)

    def find_index(self, schema: str | None, name: str) -> IndexFacts | None:
        return self.indexes.get(name)

    def drop_index(self, index: IndexFacts) -> None:
        self.dropped.append(index.name)
        self.indexes.pop(index.name, None)

    def cancel(self) -> bool:
        """Nothing runs on a server here: a stop request is honoured at the next boundary."""
        return False

    def backend_pid(self) -> int:
        return 4242


class MemoryTarget:
    """The runner's RunTarget over the in-memory store and the scripted executor."""

    def __init__(self) -> None:
        self._store = MemoryHistoryStore()
        self.lock = MemoryLock()
        self.scripted = ScriptedExecutor(self._store)

    @property
    def store(self) -> MemoryHistoryStore:
        return self._store

    def prepare(self) -> None:
        """Nothing to upgrade in memory."""

    def read_history(self) -> History:
        return self._store.read()

    def runner_lock(self, purpose: str = "lock") -> MemoryLock:
        return self.lock

    def executor(self) -> ScriptedExecutor:
        return self.scripted

    def redact(self, text: str) -> str:
        return text

    def events(self, name: str) -> list[dict[str, Any]]:
        """The detail of every logged event of one kind, in order."""
        return [detail for _, event, _, detail in self._store.events if event == name]
