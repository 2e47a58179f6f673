"""Executes a Plan against the database, one migration at a time, safely under load.

Why it is shaped this way:
* Each migration runs in its own transaction, and its applied row is written in that same
  transaction, so a migration is either fully recorded or not at all.
* Statements PostgreSQL refuses in a transaction block run alone, in autocommit, and progress is
  recorded after each, so a re-run continues where the last one stopped.
* Every statement runs under a short lock_timeout; a lock conflict rolls the transaction back and
  retries with jittered backoff, so the application's queries never queue behind a migration for
  longer than that timeout (the lock-queue outage).
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import random
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pgshift import events as ev
from pgshift.db import catalog
from pgshift.db.execute import PartFailed, failpoint, run_parts
from pgshift.errors import (
    DriftError,
    HalfApplied,
    LockBusy,
    MigrationFailed,
    MigrationTimeout,
)
from pgshift.history import AppliedMigration, History, Progress
from pgshift.model import Statement
from pgshift.plan import Plan, Step

if TYPE_CHECKING:
    import psycopg

    from pgshift.config import Settings
    from pgshift.db.target import Target
    from pgshift.ops.monitor import Monitor


@dataclass(frozen=True)
class RunOptions:
    schema: str = "pgshift"
    lock_timeout_ms: int = 500
    lock_retry_total_ms: int = 60_000
    statement_timeout_ms: int = 300_000
    runner_lock_wait_ms: int = 60_000
    allow_pooler: bool = False  # PGSHIFT_ALLOW_POOLER: trust a pooler to keep sessions

    @classmethod
    def from_settings(cls, settings: Settings) -> RunOptions:
        return cls(
            schema=settings.schema,
            lock_timeout_ms=settings.lock_timeout_ms,
            lock_retry_total_ms=settings.lock_retry_total_ms,
            statement_timeout_ms=settings.migration_timeout_ms,
            runner_lock_wait_ms=settings.runner_lock_wait_ms,
            allow_pooler=settings.allow_pooler,
        )

    retry_cap_ms: int = 10_000


@dataclass(frozen=True)
class Chunk:
    """Statements [start, end) of a migration that run together: one transaction, or one alone."""

    start: int
    end: int
    transactional: bool


@dataclass(frozen=True)
class StepResult:
    version: str
    action: str
    status: str
    duration_ms: int


@dataclass(frozen=True)
class RunResult:
    run_id: str
    steps: tuple[StepResult, ...]


def chunks_of(statements: Sequence[Statement], *, transaction: bool = True) -> list[Chunk]:
    """Group consecutive transactional statements; everything else stands alone.

    ``transaction=False`` (the file's `@transaction: false`) gives every statement a chunk of
    its own. One that PostgreSQL accepts in a transaction block still runs in a transaction of
    its own, together with its progress record, so the two commit or vanish together: a kill
    between them can never make a resumed run execute it a second time.
    """
    chunks: list[Chunk] = []
    for stmt in statements:
        transactional = stmt.transactional
        if transaction and transactional and chunks and chunks[-1].transactional:
            last = chunks[-1]
            chunks[-1] = Chunk(last.start, stmt.index + 1, True)
        else:
            chunks.append(Chunk(stmt.index, stmt.index + 1, transactional))
    if not chunks:  # an empty file is still recorded, in one transaction
        chunks.append(Chunk(0, 0, True))
    return chunks


def prefix_checksum(statements: Sequence[Statement], count: int) -> str:
    digest = hashlib.sha256()
    for stmt in statements[:count]:
        digest.update(stmt.sql.encode())
        digest.update(b"\0")
    return digest.hexdigest()


#: The first pause after a lock timeout is this many lock timeouts (then it doubles): behind a
#: long blocker the application's queries queue only while an attempt waits, so the pauses must
#: be long against the attempts for the application's total stall to stay small.
RETRY_PAUSE_FACTOR = 4


def backoff_ms(attempt: int, lock_timeout_ms: int, cap_ms: int, rng: random.Random) -> int:
    """The pause before retry ``attempt`` (1-based): jittered, growing, at least 2 lock timeouts.

    The ceiling starts at RETRY_PAUSE_FACTOR lock timeouts and doubles per attempt up to
    ``cap_ms``; the pause is drawn from its upper half, so many runners spread out while the
    application keeps long windows between attempts (bench/bench_lock_stall.py measures it).
    """
    first = RETRY_PAUSE_FACTOR * max(1, lock_timeout_ms)
    ceiling = min(max(cap_ms, first), first * (2 ** min(attempt - 1, 20)))
    return max(1, int(rng.uniform(ceiling / 2, ceiling)))


class _StatementError(Exception):
    """A server error together with the statement that raised it (None: pgshift's own part).

    ``offset`` is where in the statement's text the server placed the error, when it did.
    """

    def __init__(
        self, error: psycopg.Error, statement: Statement | None, offset: int | None = None
    ) -> None:
        super().__init__(str(error))
        self.error = error
        self.statement = statement
        self.offset = offset


#: Errors after which the whole transaction is retried, like a lock timeout: the server
#: rolled it back for reasons of concurrency, not because the migration is wrong.
RETRIED_SQLSTATES = frozenset({"55P03", "40P01", "40001"})  # lock_not_available, deadlock,
# serialization_failure


class Runner:
    """Applies the steps of a plan while holding the runner lock."""

    def __init__(
        self,
        target: Target,
        options: RunOptions,
        emit: ev.Emit = ev.ignore,
        monitor: Monitor | None = None,
    ) -> None:
        self.target = target
        self.options = options
        self.emit = emit
        self.monitor = monitor  # health monitor hook: samples beside the run, may cancel
        self.store = target.store
        self.run_id = str(uuid.uuid4())
        self.rng = random.Random()
        self.user = getpass.getuser()
        self.host = socket.gethostname()

    # -- entry point ---------------------------------------------------------------------------

    def run(self, planned: Plan, replan: Callable[[History], Plan]) -> RunResult:
        """Take the lock, re-plan against fresh history, and run what is still to do.

        ``planned`` is what the user saw and confirmed; ``replan`` computes the same kind of plan
        from the history read under the lock. Steps another runner did in the meantime are
        skipped, and nothing outside ``planned`` is run.
        """
        lock = self.target.runner_lock()
        asked = time.monotonic()
        lock.acquire(on_wait=lambda h: self.emit(ev.RunnerLockWaiting(h.describe())))
        waited_ms = _ms_since(asked)
        try:
            conn = self.target.session
            self.store.upgrade(conn)
            assert lock.conn is not None
            # -- health monitor hook (monitor.py): samples on the idle lock session
            if self.monitor is not None:
                row = conn.execute("SELECT pg_backend_pid()").fetchone()  # not conn.info: poolers
                self.monitor.start(int(str(row[0])) if row else 0, self.run_id, lock.conn)
            fresh = replan(self.store.read(conn))
            wanted = {(s.migration.version, s.action) for s in planned.steps}
            steps = [s for s in fresh.steps if (s.migration.version, s.action) in wanted]
            still = {(s.migration.version, s.action) for s in steps}
            results: list[StepResult] = []
            for step in planned.steps:
                key = (step.migration.version, step.action)
                if key not in still:
                    self.emit(ev.StepSkipped(key[0], "already done by another run", key[1]))
                    results.append(StepResult(key[0], key[1], "skipped", 0))
            assert lock.conn is not None
            side = lock.conn
            if lock.waited_for is not None:
                detail = {"holder": lock.waited_for.describe(), "waited_ms": waited_ms}
                self.store.log(side, self.run_id, "runner_lock_waited", None, detail)
            self.store.log(side, self.run_id, "run_started", None, self._run_detail(steps))
            self.emit(ev.RunStarted(self.run_id, tuple(s.migration.version for s in steps)))
            started = time.monotonic()
            try:
                for step in steps:
                    lock.check()
                    results.append(self._run_step(conn, side, step))
            except MigrationFailed as exc:
                self.store.log(
                    side,
                    self.run_id,
                    "run_failed",
                    exc.version,
                    {"error": exc.message, "exit_code": exc.exit_code},
                )
                raise
            elapsed = _ms_since(started)
            applied = sum(1 for r in results if r.status in ("applied", "reverted"))
            self.store.log(
                side,
                self.run_id,
                "run_finished",
                None,
                {"applied": applied, "duration_ms": elapsed},
            )
            self.emit(ev.RunFinished(self.run_id, applied, elapsed))
            return RunResult(self.run_id, tuple(results))
        finally:
            if self.monitor is not None:
                self.monitor.stop()
            lock.release()

    def _run_detail(self, steps: Sequence[Step]) -> dict[str, Any]:
        return {
            "steps": [[s.migration.version, s.action] for s in steps],
            "user": self.user,
            "host": self.host,
        }

    # -- one migration -------------------------------------------------------------------------

    def _run_step(  # noqa: C901
        self,
        conn: psycopg.Connection[tuple[Any, ...]],
        side: psycopg.Connection[tuple[Any, ...]],
        step: Step,
    ) -> StepResult:
        import psycopg

        m, script = step.migration, step.script
        done = 0
        if step.resume is not None:
            done = step.resume.statements_done
            if done > len(script.statements) or step.resume.prefix_checksum != prefix_checksum(
                script.statements, done
            ):
                raise DriftError(
                    f"{script.path}: the first {done} statement(s) already ran in an interrupted"
                    " run, and the file's text for them has changed since",
                    hint="restore those statements as they were; only the rest may change",
                )
        self.emit(ev.StepStarted(m.version, m.name, len(script.statements), done, step.action))
        chunks = chunks_of(script.statements, transaction=script.header.transaction)
        chunks = [c for c in chunks if c.end > done or c.end == 0]
        started = time.monotonic()
        budget_ms = script.header.statement_timeout_ms or self.options.statement_timeout_ms
        committed_any = done > 0
        if len(chunks) > 1 or not chunks[0].transactional:
            # Leave a trace before anything commits, so a killed run is known to have started.
            if step.resume is None:
                self.store.save_progress(side, self._progress(step, 0))
            self.store.log(side, self.run_id, "migration_started", m.version, {"resume_at": done})
        for i, chunk in enumerate(chunks):
            last = i == len(chunks) - 1
            try:
                self._run_chunk_with_retries(
                    conn, side, step, chunk, last=last, started=started, budget_ms=budget_ms
                )
            except _StatementError as failure:
                half = committed_any or not chunk.transactional
                if not half:
                    self._forget_start(side, step)
                raise self._failure(side, step, failure, half_applied=half) from None
            except psycopg.Error as exc:  # outside any statement: our own bookkeeping
                bookkeeping = _StatementError(exc, None)
                raise self._failure(side, step, bookkeeping, half_applied=committed_any) from None
            except MigrationFailed:  # timeouts: the chunk's transaction was rolled back
                if not committed_any and chunk.transactional:
                    self._forget_start(side, step)
                raise
            committed_any = True
        duration = _ms_since(started)
        status = "applied" if step.action == "apply" else "reverted"
        self.emit(ev.StepApplied(m.version, m.name, duration, step.action))
        return StepResult(m.version, step.action, status, duration)

    def _forget_start(self, side: psycopg.Connection[tuple[Any, ...]], step: Step) -> None:
        """Nothing of a step committed: drop the progress row its start left, if it left one.

        Otherwise a step that failed cleanly would look half-applied to `status` and `health`.
        """
        import psycopg

        if step.resume is not None:
            return  # the row predates this run and still says where things stand
        with contextlib.suppress(psycopg.Error):
            self.store.clear_progress(side, step.migration.version)

    def _progress(self, step: Step, done: int) -> Progress:
        script = step.script
        return Progress(
            version=step.migration.version,
            checksum=script.checksum,
            prefix_checksum=prefix_checksum(script.statements, done),
            statements_done=done,
            run_id=self.run_id,
            updated_at=None,  # type: ignore[arg-type]  # the database's clock
            action=step.action,
        )

    def _run_chunk_with_retries(
        self,
        conn: psycopg.Connection[tuple[Any, ...]],
        side: psycopg.Connection[tuple[Any, ...]],
        step: Step,
        chunk: Chunk,
        *,
        last: bool,
        started: float,
        budget_ms: int,
    ) -> None:

        m, script = step.migration, step.script
        lock_timeout = script.header.lock_timeout_ms or self.options.lock_timeout_ms
        retry_deadline = time.monotonic() + self.options.lock_retry_total_ms / 1000
        attempt = 0
        while True:
            remaining = budget_ms - _ms_since(started)
            if remaining <= 0:
                raise MigrationTimeout(
                    f"{script.path}: took longer than its statement timeout of {budget_ms} ms",
                    version=m.version,
                    hint="raise DB_MIGRATION_TIMEOUT or @statement-timeout, or split the file",
                )
            try:
                run = self._run_transaction if chunk.transactional else self._run_alone
                run(
                    conn,
                    step,
                    chunk,
                    last=last,
                    started=started,
                    lock_timeout_ms=lock_timeout,
                    statement_timeout_ms=remaining,
                )
                return
            except _StatementError as failure:
                yielded = self._monitor_cancelled(failure.error)
                if failure.error.sqlstate not in RETRIED_SQLSTATES and not yielded:
                    raise
                attempt += 1
                sleep_ms = backoff_ms(attempt, lock_timeout, self.options.retry_cap_ms, self.rng)
                line = failure.statement.line if failure.statement else 0
                if time.monotonic() + sleep_ms / 1000 > retry_deadline:
                    sqlstate = failure.error.sqlstate or "55P03"
                    why = (
                        "the health monitor kept cancelling it: sessions piled up behind it"
                        if yielded
                        else _primary(failure.error)
                    )
                    self.store.record_failed(
                        side,
                        self.run_id,
                        m.version,
                        {
                            "sqlstate": sqlstate,
                            "message": f"retries exhausted: {why}",
                            "line": line,
                        },
                        action=step.action,
                    )
                    raise MigrationTimeout(
                        f"{script.path}:{line}: could not take the locks it needs within"
                        f" {self.options.lock_retry_total_ms} ms ({attempt} attempts,"
                        f" lock_timeout {lock_timeout} ms each): {why}",
                        version=m.version,
                        sqlstate=sqlstate,
                        hint="find the blocking session with `pgshift health`; raise"
                        " PGSHIFT_LOCK_RETRY_TOTAL to wait longer",
                    ) from None
                detail = _primary(failure.error)
                if yielded:
                    detail = "cancelled by the health monitor: sessions piled up behind it"
                self.store.log(
                    side,
                    self.run_id,
                    "lock_retry",
                    m.version,
                    {
                        "attempt": attempt,
                        "line": line,
                        "sleep_ms": sleep_ms,
                        "message": detail,
                        "sqlstate": failure.error.sqlstate,
                        "statement_index": failure.statement.index if failure.statement else None,
                    },
                )
                self.emit(ev.LockRetry(m.version, line, attempt, sleep_ms, detail))
                time.sleep(sleep_ms / 1000)

    def _monitor_cancelled(self, error: Exception) -> bool:
        """A QueryCanceled the health monitor caused: retried like a lock timeout (57014)."""
        import psycopg.errors

        return (
            isinstance(error, psycopg.errors.QueryCanceled)
            and self.monitor is not None
            and self.monitor.consume_cancel()
        )

    def _run_alone(
        self,
        conn: psycopg.Connection[tuple[Any, ...]],
        step: Step,
        chunk: Chunk,
        *,
        last: bool,
        started: float,
        lock_timeout_ms: int,
        statement_timeout_ms: int,
    ) -> None:
        """Run one statement PostgreSQL refuses in a transaction, then record it was done."""
        import psycopg

        statements = step.script.statements[chunk.start : chunk.end]
        (current,) = statements
        try:
            _set_timeouts(conn, lock_timeout_ms, statement_timeout_ms, local=False)
            if not self._already_done(conn, step, current):
                conn.execute(current.sql.encode())
            failpoint(f"ran:{step.migration.version}:{current.index}")
            record = self._record_sql(conn, step, chunk, last=last, started=started)
            if last:
                with conn.transaction():
                    conn.execute(record)
            else:
                conn.execute(record)
            failpoint(f"committed:{step.migration.version}:{chunk.end}")
            self._statements_done(step, chunk)
        except psycopg.Error as exc:
            raise _StatementError(exc, current, _own_offset(exc)) from exc
        finally:
            if not conn.closed:
                _reset_timeouts(conn)

    def _run_transaction(
        self,
        conn: psycopg.Connection[tuple[Any, ...]],
        step: Step,
        chunk: Chunk,
        *,
        last: bool,
        started: float,
        lock_timeout_ms: int,
        statement_timeout_ms: int,
    ) -> None:
        """Run a transactional chunk and its history write as ONE simple-query message.

        One round trip per migration instead of one per statement is what keeps pgshift near
        psql's speed (bench/RESULTS.md). The server stops at the first error and the
        transaction rolls back whole; db/execute.py tells which part failed, so the failing
        statement and its line are named without running anything again.
        """
        statements = step.script.statements[chunk.start : chunk.end]
        record = self._record_sql(conn, step, chunk, last=last, started=started)
        timeouts = _timeouts_sql(lock_timeout_ms, statement_timeout_ms, local=True)
        parts = [b"BEGIN", timeouts, *(s.sql.encode() for s in statements), record, b"COMMIT"]
        try:
            run_parts(conn, parts)
        except PartFailed as failed:
            _rollback_quietly(conn)
            index = failed.index - 2  # BEGIN and the timeouts come first
            if 0 <= index < len(statements):
                raise _StatementError(failed.error, statements[index], failed.offset) from None
            raise _StatementError(failed.error, None) from None  # pgshift's parts, or COMMIT
        failpoint(f"committed:{step.migration.version}:{chunk.end}")
        self._statements_done(step, chunk)

    def _already_done(
        self, conn: psycopg.Connection[tuple[Any, ...]], step: Step, stmt: Statement
    ) -> bool:
        """Decide what a resumed concurrent index statement must do.

        An INVALID index left by a failed or interrupted CREATE INDEX CONCURRENTLY would make
        `IF NOT EXISTS` skip the build and leave the table without a usable index: drop and
        rebuild it. A valid one built by an interrupted run whose progress was not recorded yet
        counts as done.
        """
        if stmt.concurrent_index is None:
            return False
        schema, name = stmt.concurrent_index
        found = catalog.find_index(conn, schema, name)
        if stmt.kind == "IndexStmt":
            if found is None:
                return False
            if not found.valid:
                from psycopg import sql

                conn.execute(
                    sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}.{}").format(
                        sql.Identifier(found.schema), sql.Identifier(found.name)
                    )
                )
                version = step.migration.version
                self.emit(ev.InvalidIndexRebuilt(version, found.qualified))
                detail = {"index": found.qualified}
                self.store.log(conn, self.run_id, "invalid_index_rebuilt", version, detail)
                return False
            return _interrupted_at(step, stmt)
        # DROP INDEX CONCURRENTLY: already gone after an interrupted run counts as done.
        return found is None and _interrupted_at(step, stmt)

    def _record_sql(
        self,
        conn: psycopg.Connection[tuple[Any, ...]],
        step: Step,
        chunk: Chunk,
        *,
        last: bool,
        started: float,
    ) -> bytes:
        """The history write that ends a chunk: progress, or the applied / reverted row."""
        m = step.migration
        if not last:
            return self.store.progress_sql(conn, self._progress(step, chunk.end))
        if step.action == "revert":
            detail = {"user": self.user, "host": self.host}
            return self.store.reverted_sql(
                conn, m.version, self.run_id, detail, duration_ms=_ms_since(started)
            )
        return self.store.applied_sql(
            conn,
            AppliedMigration(
                version=m.version,
                description=m.description,
                checksum=m.checksum,
                rollback_checksum=m.rollback.checksum if m.rollback else None,
                rollback_sql=m.rollback.text if m.rollback else None,  # for a later downgrade
                applied_at=None,  # type: ignore[arg-type]  # the database's now()
                duration_ms=_ms_since(started),
                applied_by=self.user,
                host=self.host,
                run_id=self.run_id,
                metadata=m.header.metadata(),
            ),
        )

    def _statements_done(self, step: Step, chunk: Chunk) -> None:
        m = step.migration
        self.emit(ev.StatementDone(m.version, chunk.end, len(step.script.statements)))

    def _failure(
        self,
        side: psycopg.Connection[tuple[Any, ...]],
        step: Step,
        failure: _StatementError,
        *,
        half_applied: bool,
    ) -> MigrationFailed:
        import psycopg.errors

        m, script = step.migration, step.script
        error = failure.error
        stmt = failure.statement
        line = _error_line(stmt, failure.offset)
        primary = self.target.redact(_primary(error))
        sqlstate = error.sqlstate
        detail: dict[str, Any] = {"sqlstate": sqlstate, "message": primary, "line": line}
        if stmt is not None:
            detail["statement"] = stmt.sql[:2000]
            detail["statement_index"] = stmt.index
        with contextlib.suppress(psycopg.Error):  # the failure matters more than its log line
            self.store.record_failed(side, self.run_id, m.version, detail, action=step.action)
        self.emit(ev.StepFailed(m.version, m.name, primary, step.action))
        where = f"{script.path}:{line}" if line else str(script.path)
        message = f"{where}: {primary}" + (f" (SQLSTATE {sqlstate})" if sqlstate else "")
        diag_hint = error.diag.message_hint if error.diag else None
        if half_applied:
            return HalfApplied(
                message + f"\nthis {_noun(step)} runs partly outside a transaction and stopped"
                " half-way; its progress is recorded",
                version=m.version,
                sqlstate=sqlstate,
                hint="fix the cause and run the same command again: it continues after the"
                " last completed statement",
            )
        if isinstance(error, psycopg.errors.QueryCanceled):
            return MigrationTimeout(
                message,
                version=m.version,
                sqlstate=sqlstate,
                hint="raise DB_MIGRATION_TIMEOUT or @statement-timeout for this file",
            )
        undone = (
            "the migration was rolled back; nothing of it was applied"
            if step.action == "apply"
            else "the rollback's transaction was rolled back; the migration is still applied"
        )
        return MigrationFailed(
            message + "\n" + undone,
            version=m.version,
            sqlstate=sqlstate,
            hint=diag_hint,
        )


def _noun(step: Step) -> str:
    return "migration" if step.action == "apply" else "rollback"


def _interrupted_at(step: Step, stmt: Statement) -> bool:
    """True when an earlier, interrupted run of this step stopped at ``stmt``."""
    return step.resume is not None and step.resume.statements_done == stmt.index


def _timeouts_sql(lock_ms: int, statement_ms: int, *, local: bool) -> bytes:
    scope = "true" if local else "false"
    return (
        f"SELECT set_config('lock_timeout', '{int(lock_ms)}ms', {scope}),"
        f" set_config('statement_timeout', '{int(statement_ms)}ms', {scope})"
    ).encode()


def _set_timeouts(
    conn: psycopg.Connection[tuple[Any, ...]], lock_ms: int, statement_ms: int, *, local: bool
) -> None:
    conn.execute(_timeouts_sql(lock_ms, statement_ms, local=local))


def _rollback_quietly(conn: psycopg.Connection[tuple[Any, ...]]) -> None:
    """End the failed transaction a multi-statement message left open."""
    import psycopg

    if conn.closed:
        return
    with contextlib.suppress(psycopg.Error):
        conn.execute("ROLLBACK")


def _reset_timeouts(conn: psycopg.Connection[tuple[Any, ...]]) -> None:
    import psycopg

    with contextlib.suppress(psycopg.Error):
        conn.execute("RESET lock_timeout; RESET statement_timeout")


def _primary(error: Exception) -> str:
    diag = getattr(error, "diag", None)
    text = diag.message_primary if diag is not None and diag.message_primary else str(error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


def _error_line(stmt: Statement | None, offset: int | None) -> int:
    """The file line of the error: the statement's line, refined by the server's position."""
    if stmt is None:
        return 0
    if offset is not None and 0 <= offset <= len(stmt.sql):
        return stmt.line + stmt.sql[:offset].count("\n")
    return stmt.line


def _own_offset(error: Exception) -> int | None:
    """The server's error position in a statement that was sent on its own."""
    diag = getattr(error, "diag", None)
    position = diag.statement_position if diag is not None else None
    try:
        return int(position) - 1 if position else None
    except ValueError:
        return None


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


__all__ = ["Chunk", "LockBusy", "RunOptions", "RunResult", "Runner", "StepResult", "chunks_of"]
