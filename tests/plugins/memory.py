"""An in-memory target for the runner: MemoryHistoryStore, a scripted executor and a fake clock.

It keeps the Executor contract of pgshift.execution (a transaction's statements and its
history write commit together or not at all; a statement run alone commits before its write)
and lets a test script the server's answers per statement and attempt, so the runner's
decisions (resume, retry budget, failure recording, the plan re-check) are tested without a
database. tests/contract/test_executor.py runs one suite over this executor and the PostgreSQL
one, so that where they differ, the fake is the one that is wrong.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pgshift import events as ev
from pgshift.db.lock import LockHolder
from pgshift.errors import HalfApplied, LockBusy, MigrationFailed
from pgshift.execution import (
    DEADLOCK_DETECTED,
    PROGRESS_MOVED,
    QUERY_CANCELED,
    STOPPED_BEFORE_START,
    BatchFailed,
    HistoryWrite,
    IndexFacts,
    RecordApplied,
    RecordContracted,
    RecordProgress,
    RecordReverted,
    ServerError,
    StatementFailed,
    Transaction,
)
from pgshift.history import (
    MEMORY_SESSION,
    BackfillProgress,
    History,
    MemoryHistoryStore,
    ProgressMoved,
)
from pgshift.model import Statement
from pgshift.ops.backfill import BackfillOptions, BackfillResult

if TYPE_CHECKING:
    from pgshift.ops.backfill import BackfillScript
    from pgshift.ops.stopping import StopRequest


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


@dataclass
class LockSession:
    """The lock's own session: a server pid, and whether the server still has it."""

    pid: int
    purpose: str
    alive: bool = True

    @property
    def closed(self) -> bool:
        """What history.Session asks: a session the server ended is closed."""
        return not self.alive


class LockServer:
    """One database's runner lock in memory: which session holds it, shared by MemoryLocks.

    Like a session advisory lock, it goes with its session: ``kill`` is the server ending the
    holder's session (pg_terminate_backend, a lost connection), which frees the lock at once.
    """

    SINCE = "2025-01-01 00:00:00+00"

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.holder: LockSession | None = None
        self._pids = itertools.count(40_000)

    def session(self, purpose: str) -> LockSession:
        return LockSession(next(self._pids), purpose)

    def describe(self, session: LockSession) -> LockHolder:
        return LockHolder(session.pid, f"pgshift {session.purpose}", self.SINCE, "idle")

    def kill(self, session: LockSession) -> None:
        with self.changed:
            session.alive = False
            if self.holder is session:
                self.holder = None
            self.changed.notify_all()


class MemoryLock:
    """The runner lock (db/lock.py's RunnerLock) over a LockServer: one holder at a time.

    A second lock waits up to ``wait_ms`` (woken when the holder lets go), names the holder
    in ``waited_for`` and to ``on_wait`` once, and is refused with LockBusy when the wait runs
    out. tests/contract/test_lock.py holds it and the real one to the same behaviour.
    """

    def __init__(
        self, server: LockServer | None = None, wait_ms: int = 0, purpose: str = "lock"
    ) -> None:
        self.server = server or LockServer()
        self.wait_ms = wait_ms
        self.purpose = purpose
        self.waited_for: LockHolder | None = None
        self.conn: LockSession | None = None

    @property
    def held(self) -> bool:
        return self.conn is not None and self.server.holder is self.conn

    def acquire(self, on_wait: Callable[[LockHolder], None] | None = None) -> None:
        server = self.server
        session = server.session(self.purpose)
        deadline = time.monotonic() + self.wait_ms / 1000
        notified = False
        with server.changed:
            while server.holder is not None:
                holder = server.describe(server.holder)
                self.waited_for = holder
                if not notified and on_wait is not None:
                    on_wait(holder)
                    notified = True
                left = deadline - time.monotonic()
                if left <= 0:
                    raise LockBusy(
                        f"another pgshift run holds the migration lock: {holder.describe()}",
                        hint="wait for it to finish, or raise PGSHIFT_RUNNER_LOCK_WAIT",
                    )
                server.changed.wait(left)
            server.holder = session
        self.conn = session

    def check(self, every_s: float = 1.0) -> None:
        """Fail loudly when the lock is not held or its session died (asked every time: free)."""
        if self.conn is None:
            raise LockBusy("the migration lock is not held")
        if not self.conn.alive:
            raise LockBusy("lost the migration lock: its connection to the database was closed")

    def release(self) -> None:
        if self.conn is None:
            return
        self.server.kill(self.conn)  # closing the session gives the lock back
        self.conn = None


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

    def _write(self, write: HistoryWrite, statement: Statement | None = None) -> None:
        """The history write; a compare-and-set that no longer holds is the server's PGSMV.

        ``statement``: the one run alone before the write, which the refusal names, as the
        PostgreSQL executor names it for whatever fails in run_alone.
        """
        try:
            if isinstance(write, RecordApplied):
                self.store.record_applied(MEMORY_SESSION, write.row, expect=write.expect)
            elif isinstance(write, RecordReverted):
                version, run_id, expect = write.version, write.run_id, write.expect
                self.store.record_reverted(
                    MEMORY_SESSION, version, run_id, write.detail, expect=expect
                )
            elif isinstance(write, RecordContracted):
                self.store.record_contracted(
                    MEMORY_SESSION, write.version, write.run_id, expect=write.expect
                )
            elif isinstance(write, RecordProgress):
                self.store.save_progress(MEMORY_SESSION, write.progress, expect=write.expect)
        except ProgressMoved as moved:
            raise StatementFailed(ServerError(PROGRESS_MOVED, str(moved)), statement) from None

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

    def run_transactions(
        self, batch: Sequence[Transaction], stopped: Callable[[], bool] = lambda: False
    ) -> list[int]:
        """One after the other, as the server runs a batch's message: the first refusal stops
        it, and what committed before it stays; once ``stopped``, no later one starts."""
        for done, job in enumerate(batch):
            if done and stopped():
                failure = StatementFailed(STOPPED_BEFORE_START, None)
                raise BatchFailed(done, [0] * done, failure, begun=False)
            try:
                self.run_transaction(
                    job.statements,
                    job.write,
                    version=job.version,
                    lock_timeout_ms=job.lock_timeout_ms,
                    statement_timeout_ms=job.statement_timeout_ms,
                )
            except StatementFailed as failure:
                raise BatchFailed(done, [0] * done, failure) from None
        return [0] * len(batch)

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
            try:
                self._send(statement)
            except StatementFailed as refused:
                self._left_invalid(statement, refused.error)
                raise
            self.committed.append(statement.sql)
            self._catalog(statement)
        if self.kill_after == statement.sql:
            self.kill_after = None
            raise Killed(statement.sql)
        self._write(write, statement)

    def _catalog(self, stmt: Statement) -> None:
        if stmt.concurrent_index is None:
            return
        name = stmt.concurrent_index[1]
        if stmt.kind == "IndexStmt":
            self.indexes[name] = IndexFacts(stmt.concurrent_index[0] or "public", name, True)
        else:
            self.indexes.pop(name, None)

    def _left_invalid(self, stmt: Statement, error: ServerError) -> None:
        """A concurrent build that fails after its catalog entry leaves an INVALID index.

        PostgreSQL enters the index first and builds it afterwards: a failure of the build (a
        duplicate key, bad data, a cancel, a deadlock while it waits) leaves the entry behind,
        marked invalid. A refusal before the entry (no such table, the table's lock) leaves
        nothing; a scripted lock timeout is taken to be that one.
        """
        if stmt.concurrent_index is None or stmt.kind != "IndexStmt":
            return
        sqlstate = error.sqlstate or ""
        if sqlstate[:2] in ("22", "23") or sqlstate in (QUERY_CANCELED, DEADLOCK_DETECTED):
            schema, name = stmt.concurrent_index
            self.indexes[name] = IndexFacts(schema or "public", name, False)

    def find_index(self, schema: str | None, name: str) -> IndexFacts | None:
        """The index as the catalog resolves it: in ``schema``, or on the search path (where
        every index of this fake lives, in public)."""
        found = self.indexes.get(name)
        if found is None or (schema is not None and schema != found.schema):
            return None
        return found

    def drop_index(self, index: IndexFacts) -> None:
        self.dropped.append(index.name)
        self.indexes.pop(index.name, None)

    def cancel(self) -> bool:
        """Nothing runs on a server here: a stop request is honoured at the next boundary."""
        return False

    def backend_pid(self) -> int:
        return 4242


@dataclass
class _Fill:
    """One backfill's progress in memory: batches committed of its total, finished or not."""

    batches: int = 0
    finished: bool = False


class MemoryBackfills:
    """The runner's Backfills (ops/backfill.py) in memory: a backfill of ``total`` batches.

    Each batch "commits" at once and moves the backfill's progress, which the store shows as
    an unfinished BackfillProgress (what status reads). ``fail_at`` makes that batch number
    fail (the batches before it stay); ``on_batch`` is called after each batch (a test's stop
    request arrives "during" the backfill). ``runs`` records every run's (version, action,
    options); a stop is honoured between batches, as run_backfill honours it.
    """

    def __init__(self, store: MemoryHistoryStore, total: int = 4) -> None:
        self.store = store
        self.total = total
        self.fills: dict[tuple[str, str], _Fill] = {}
        self.runs: list[tuple[str, str, BackfillOptions]] = []
        self.forgotten: list[tuple[str, str]] = []
        self.fail_at: int | None = None
        self.on_batch: Callable[[int], None] | None = None
        # A recorded revert drops the apply backfill's progress, finished or not, as on a server.
        store.on_revert.append(self._reverted)

    def run(
        self,
        version: str,
        script: BackfillScript,
        *,
        action: str,
        run_id: str,
        options: BackfillOptions,
        emit: ev.Emit,
        stop: StopRequest | None,
    ) -> BackfillResult:
        self.runs.append((version, action, options))
        fill = self.fills.setdefault((version, action), _Fill())
        resumed = fill.batches > 0
        emit(ev.BackfillStarted(version, "t", ("id",), self.total, fill.batches, 1, action))
        this_run = 0
        while not fill.finished:
            if stop is not None and stop.requested:
                if fill.batches == 0:
                    raise stop.error(f"backfill {version} stopped before it began")
                raise HalfApplied(
                    f"{script.path}: backfill stopped after {fill.batches} rows"
                    f" ({fill.batches} committed batches)",
                    version=version,
                )
            number = fill.batches + 1
            if number == self.fail_at:
                self.fail_at = None
                raise MigrationFailed(f"{script.path}:1: a backfill batch failed", version=version)
            fill.batches = number
            fill.finished = number == self.total
            this_run += 1
            self._show(version, action, fill)
            if self.on_batch is not None:
                self.on_batch(number)
        emit(ev.BackfillFinished(version, fill.batches, fill.batches, fill.batches, 0, action))
        return BackfillResult(
            version, action, "t", ("id",), fill.batches, fill.batches, fill.batches, this_run, 0,
            resumed,
        )  # fmt: skip

    def _show(self, version: str, action: str, fill: _Fill) -> None:
        key = (version, action)
        if fill.finished:
            self.store.backfills.pop(key, None)
        else:
            self.store.backfills[key] = BackfillProgress(
                version, action, fill.batches, fill.batches, self.total, fill.batches
            )

    def _reverted(self, version: str) -> None:
        self.fills.pop((version, "apply"), None)

    def forget(self, version: str, action: str) -> None:
        self.forgotten.append((version, action))
        self.fills.pop((version, action), None)
        self.store.backfills.pop((version, action), None)


class MemoryTarget:
    """The runner's RunTarget over the in-memory store and the scripted executor."""

    def __init__(self) -> None:
        self._store = MemoryHistoryStore()
        self.lock = MemoryLock()
        self.scripted = ScriptedExecutor(self._store)
        self.backfills = MemoryBackfills(self._store)

    @property
    def store(self) -> MemoryHistoryStore:
        return self._store

    def prepare(self) -> bool:
        """Nothing to upgrade in memory (nor to create: the history is read)."""
        return False

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
