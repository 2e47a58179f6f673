"""Executes a Plan on a target, migration by migration, safely under load.

The runner decides; an Executor (pgshift.execution) runs. Nothing here talks to PostgreSQL or
imports its driver, so every decision below (resume, retry budget, failure recording, the plan
re-check) is tested on the in-memory history store and executor as well as on a real server.

Why it is shaped this way:
* Each migration runs in its own transaction, and its applied row is written in that same
  transaction, so a migration is either fully recorded or not at all.
* Statements PostgreSQL refuses in a transaction block run alone, in autocommit, and progress is
  recorded after each, so a re-run continues where the last one stopped.
* Every statement runs under a short lock_timeout; a lock conflict rolls the transaction back and
  retries with jittered backoff, so the application's queries never queue behind a migration for
  longer than that timeout (the lock-queue outage).
* Consecutive small migrations that are each one transaction travel several to a message
  (_BatchSize, Executor.run_transactions), so the server never waits on the client between
  them; each still commits alone, and one that fails in a batch goes on as if run alone.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import random
import signal
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol, cast

from pgshift import events as ev
from pgshift.durations import format_duration_ms
from pgshift.errors import (
    DriftError,
    HalfApplied,
    Interrupted,
    LockBusy,
    MigrationFailed,
    MigrationTimeout,
    PgshiftError,
    PlanChanged,
    RunResult,
    StepResult,
)
from pgshift.execution import (
    PROGRESS_MOVED,
    RETRIED_SQLSTATES,
    BatchFailed,
    Executor,
    HistoryWrite,
    RecordApplied,
    RecordContracted,
    RecordProgress,
    RecordReverted,
    ServerError,
    StatementFailed,
    Transaction,
)
from pgshift.history import (
    AppliedMigration,
    Expect,
    History,
    HistoryStore,
    Progress,
    ProgressMoved,
    Session,
)
from pgshift.model import BACKFILL_KIND, Header, Migration, Statement
from pgshift.ops.backfill import BackfillOptions, Backfills
from pgshift.ops.backoff import RETRY_PAUSE_FLOOR, backoff_ms
from pgshift.ops.stopping import StopRequest, trapped
from pgshift.plan import Plan, Script, Step, recheck

if TYPE_CHECKING:
    from collections.abc import Callable

    from pgshift.config import Settings
    from pgshift.db.lock import LockHolder
    from pgshift.db.target import Target
    from pgshift.ops.monitor import Monitor


class RunnerLock(Protocol):
    """The migration lock as the runner uses it (db/lock.py's RunnerLock, or a test's)."""

    waited_for: LockHolder | None

    @property
    def conn(self) -> Session | None:
        """The lock's own session while held: the runner's log writes and the monitor use it."""
        ...

    def acquire(self, on_wait: Callable[[LockHolder], None] | None = None) -> None: ...

    def check(self, every_s: float = 1.0) -> None: ...

    def release(self) -> None: ...


class RunTarget(Protocol):
    """What the runner needs of a target (db/target.py's Target, or an in-memory one)."""

    @property
    def store(self) -> HistoryStore: ...

    def prepare(self) -> bool: ...

    def read_history(self) -> History: ...

    def runner_lock(self, purpose: str = "lock") -> RunnerLock: ...

    def executor(self) -> Executor: ...

    def redact(self, text: str) -> str: ...


def _side(lock: RunnerLock) -> Session:
    """The held lock's session; a lock without one has lost its connection."""
    if lock.conn is None:
        raise LockBusy("lost the migration lock: its connection to the database was closed")
    return lock.conn


@dataclass(frozen=True)
class RunOptions:
    schema: str = "pgshift"
    lock_timeout_ms: int = 500
    lock_retry_total_ms: int = 60_000
    statement_timeout_ms: int = 300_000
    runner_lock_wait_ms: int = 60_000
    allow_pooler: bool = False  # PGSHIFT_ALLOW_POOLER: trust a pooler to keep sessions
    #: PGSHIFT_STOP_GRACE: how long SIGTERM lets the running statement finish before
    #: cancelling it (ops/stopping.py).
    stop_grace_ms: int = 10_000
    #: How backfill steps are paced (SPEC 14); a step's lock and statement timeouts and the
    #: retry budget come from the fields above and the file's header, per step.
    backfill: BackfillOptions = field(default_factory=BackfillOptions)

    @classmethod
    def from_settings(cls, settings: Settings) -> RunOptions:
        return cls(
            schema=settings.connection.schema,
            lock_timeout_ms=settings.runner.lock_timeout_ms,
            lock_retry_total_ms=settings.runner.lock_retry_total_ms,
            statement_timeout_ms=settings.runner.migration_timeout_ms,
            runner_lock_wait_ms=settings.runner.lock_wait_ms,
            allow_pooler=settings.connection.allow_pooler,
            stop_grace_ms=settings.runner.stop_grace_ms,
            backfill=BackfillOptions.from_settings(settings),
        )

    retry_cap_ms: int = 10_000


class _Stopped(Exception):
    """A stop request honoured at a boundary the runner knows: a step, or a chunk of one.

    ``version`` is the step that was under way (None: stopped between steps) and ``half``
    whether part of it stays committed, so that only a re-run can finish it.
    """

    def __init__(
        self,
        version: str | None,
        action: str,
        *,
        half: bool,
        done: int,
        total: int,
        ms: int,
        why: str | None = None,
    ) -> None:
        super().__init__(version)
        self.version = version
        self.action = action
        self.half = half
        self.done = done
        self.total = total
        self.ms = ms
        self.why = why  # how far a half-done step got, when not in statements (a backfill)


@dataclass(frozen=True)
class Chunk:
    """Statements [start, end) of a migration that run together: one transaction, or one alone."""

    start: int
    end: int
    transactional: bool


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


class Runner:
    """Applies the steps of a plan while holding the runner lock."""

    def __init__(
        self,
        target: RunTarget,
        options: RunOptions,
        emit: ev.Emit = ev.ignore,
        monitor: Monitor | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        backfills: Backfills | None = None,
    ) -> None:
        self.target = target
        if backfills is None:  # a database target's: the in-memory one is passed by tests
            from pgshift.ops.backfill import TargetBackfills

            backfills = TargetBackfills(cast("Target", target))
        #: Runs the steps whose file is a `@kind: backfill` (ops/backfill.py).
        self.backfills = backfills
        self.options = options
        self.emit = emit
        self.monitor = monitor  # health monitor hook: samples beside the run, may cancel
        self.store = target.store
        self.run_id = str(uuid.uuid4())
        self.rng = random.Random()
        self.user = getpass.getuser()
        self.host = socket.gethostname()
        # The pause between retries and the clock of time budgets: a test passes its own pair.
        self.sleep = sleep
        self.clock = clock
        # SIGINT / SIGTERM during the run land here (ops/stopping.py); a test sets it directly.
        self.stop = StopRequest(options.stop_grace_ms / 1000)
        self.seen: dict[str, Expect] = {}  # each migration's progress as the run found it
        self.earlier_runs: list[str] = []  # live sessions of earlier runs it waited for
        self.overtaken: tuple[str, ...] = ()  # resume points another run moved forward
        self.preflight_skipped = False  # the plan's pre-flight was skipped: the run logs it

    # -- entry point ---------------------------------------------------------------------------

    def run(self, planned: Plan) -> RunResult:
        """Take the lock, check the plan against fresh history, and run exactly it.

        ``planned`` is what the user saw and confirmed. Under the lock the same plan is made
        again (plan.recheck): steps another run finished meanwhile are skipped (their goal is
        reached); any other difference refuses the run (PlanChanged) before anything runs.
        A failure carries what was done so far as its ``result``.

        SIGINT and SIGTERM stop it cleanly (ops/stopping.py): nothing new starts, an
        `interrupted` event is logged, and the error says whether a re-run must finish a
        half-applied step (HalfApplied, exit 6) or nothing is half-done (Interrupted, 130/143).
        """
        with trapped(self.stop):
            return self._run(planned)

    def _run(self, planned: Plan) -> RunResult:
        lock = self.target.runner_lock()
        asked = time.monotonic()
        self.stop.waiting = True  # a signal now stops at once: nothing has started
        try:
            if self.stop.requested:
                raise self.stop.error(f"interrupted by {self.stop.signal_name}: nothing was run")
            lock.acquire(on_wait=self._waiting)
        finally:
            self.stop.waiting = False
        waited_ms = _ms_since(asked)
        results: list[StepResult] = []
        try:
            # A history this run's prepare has just created, under the lock, is empty.
            history = History() if self.target.prepare() else self.target.read_history()
            check = recheck(planned, history)
            if check.changed:
                raise PlanChanged(
                    "the database changed since the plan was made; nothing was run:\n"
                    + "\n".join(check.changed),
                    hint="plan again (`pgshift status` shows where things stand)",
                )
            # Where this run finds each migration's progress: its writes move it only from
            # there (compare-and-set, history.Expect).
            self.seen = {p.version: Expect.of(p) for p in history.in_progress}
            executor = self.target.executor()
            self.stop.cancel = executor.cancel
            if self.monitor is not None:  # samples on the idle lock session (monitor.py)
                self.monitor.start(executor.backend_pid(), self.run_id, _side(lock))
            for step in check.done:
                version, action = step.migration.version, step.action
                self.emit(ev.StepSkipped(version, "already done by another run", action))
                results.append(StepResult(version, action, "skipped", 0))
            self.overtaken = check.moved
            self.preflight_skipped = planned.preflight_skipped
            for moved in check.moved:
                self.emit(ev.PlanOvertaken(moved))
            self._run_steps(executor, lock, check.run, waited_ms, results)
            return RunResult(self.run_id, tuple(results))
        except PgshiftError as exc:
            exc.result = RunResult(self.run_id, tuple(results))
            raise
        finally:
            if self.monitor is not None:
                self.monitor.stop()
            self.stop.cancel = None
            lock.release()

    def _waiting(self, holder: LockHolder) -> None:
        """Say who the run waits for: the lock's holder, or an earlier run's live session."""
        if holder.earlier_run:
            self.earlier_runs.append(holder.describe())
            self.emit(ev.EarlierRunWaiting(holder.describe()))
        else:
            self.emit(ev.RunnerLockWaiting(holder.describe()))

    def _log_before(self, side: Session, lock: RunnerLock, waited_ms: int) -> None:
        """The events logged before `run_started`: waits, overtaken plans, a skipped pre-flight."""
        if lock.waited_for is not None:
            detail = {"holder": lock.waited_for.describe(), "waited_ms": waited_ms}
            self.store.log(side, self.run_id, "runner_lock_waited", None, detail)
        for session in self.earlier_runs:
            detail = {"session": session, "waited_ms": waited_ms}
            self.store.log(side, self.run_id, "earlier_run_waited", None, detail)
        for moved in self.overtaken:
            self.store.log(side, self.run_id, "plan_overtaken", None, {"detail": moved})
        if self.preflight_skipped:
            detail = {"detail": "pre-flight checks skipped (--skip-preflight)"}
            self.store.log(side, self.run_id, "preflight_skipped", None, detail)

    def _run_steps(
        self,
        executor: Executor,
        lock: RunnerLock,
        steps: Sequence[Step],
        waited_ms: int,
        results: list[StepResult],
    ) -> None:
        """Run the steps in order, logging the run's start, end or failure."""
        side = _side(lock)
        self._log_before(side, lock, waited_ms)
        self.store.log(side, self.run_id, "run_started", None, self._run_detail(steps))
        self.emit(ev.RunStarted(self.run_id, tuple(s.migration.version for s in steps)))
        started = time.monotonic()
        size = _BatchSize()
        try:
            at = 0
            while at < len(steps):
                if self.stop.requested:
                    raise _Stopped(None, steps[at].action, half=False, done=0, total=0, ms=0)
                lock.check()
                group = _batch_at(steps, at, size.steps)
                began = time.monotonic()
                if len(group) > 1:
                    done = self._run_batch(executor, side, group, results)
                else:
                    self._run_step(_StepRun(self, executor, side, steps[at]), results)
                    done = 1
                if group:
                    size.took(done, time.monotonic() - began)
                at += done
        except MigrationFailed as exc:
            detail = {"error": exc.message, "exit_code": exc.exit_code}
            self.store.log(side, self.run_id, "run_failed", exc.version, detail)
            raise
        except _Stopped as stopped:
            if stopped.version is not None:
                results.append(
                    StepResult(stopped.version, stopped.action, "interrupted", stopped.ms)
                )
            raise self._interrupted(side, stopped, results) from None
        elapsed = _ms_since(started)
        applied = sum(1 for r in results if r.status in ("applied", "reverted"))
        detail = {"applied": applied, "duration_ms": elapsed}
        self.store.log(side, self.run_id, "run_finished", None, detail)
        self.emit(ev.RunFinished(self.run_id, applied, elapsed))

    def _run_step(
        self, run: _StepRun, results: list[StepResult], first: StatementFailed | None = None
    ) -> None:
        """One step, its result recorded; a failure's too, before it is raised."""
        began = time.monotonic()
        try:
            results.append(run.run(first))
        except MigrationFailed:
            version, action = run.version, run.step.action
            results.append(StepResult(version, action, "failed", _ms_since(began)))
            raise

    def _run_batch(
        self, executor: Executor, side: Session, group: Sequence[Step], results: list[StepResult]
    ) -> int:
        """Run ``group`` (small one-transaction steps, _batch_at) as one message; how many of
        its steps are done. Each still commits on its own with its history row; the step that
        failed in it goes on as if run alone (retried, recorded, reported) from that answer."""
        runs = [_StepRun(self, executor, side, step) for step in group]
        batch = [run.transaction() for run in runs]
        try:
            durations = executor.run_transactions(batch, lambda: self.stop.requested)
        except BatchFailed as failed:
            for run, ms in zip(runs, failed.durations, strict=False):
                results.append(run.committed(ms))
            if self.stop.requested and not failed.begun:  # stopped between two steps
                action = group[failed.done].action
                raise _Stopped(None, action, half=False, done=0, total=0, ms=0) from None
            self._run_step(runs[failed.done], results, failed.failure)
            return failed.done + 1
        results.extend(run.committed(ms) for run, ms in zip(runs, durations, strict=True))
        return len(runs)

    def _interrupted(
        self, side: Session, stopped: _Stopped, results: Sequence[StepResult]
    ) -> Interrupted | HalfApplied:
        """Log and emit the stop, and phrase it: what is done, and whether a re-run must be."""
        name = self.stop.signal_name or "a signal"
        done = sum(1 for r in results if r.status in ("applied", "reverted"))
        detail: dict[str, Any] = {
            "signal": name,
            "half_applied": stopped.half,
            "steps_done": done,
            "statements_done": stopped.done,
        }
        with contextlib.suppress(Exception):  # the stop matters more than its log line
            self.store.log(side, self.run_id, "interrupted", stopped.version, detail)
        self.emit(ev.Interrupted(self.run_id, name, stopped.version, stopped.half, done))
        if stopped.half and stopped.why is not None:
            return HalfApplied(
                f"interrupted by {name}: {stopped.why}",
                version=stopped.version,
                hint="run the same command again: the backfill continues after its last"
                " committed batch",
            )
        if stopped.half:
            return HalfApplied(
                f"interrupted by {name}: {stopped.version} stopped after {stopped.done} of"
                f" {stopped.total} statement(s); it runs partly outside a transaction and"
                " its progress is recorded",
                version=stopped.version,
                hint="run the same command again: it resumes after the last completed statement",
            )
        where = ""
        if stopped.version is not None and stopped.action == "revert":
            where = f"; the rollback of {stopped.version} was undone, it is still applied"
        elif stopped.version is not None:
            where = f"; {stopped.version} was rolled back, nothing of it remains"
        return Interrupted(
            f"interrupted by {name} after {done} step(s){where}; nothing is half-done",
            signum=self.stop.signum or signal.SIGINT,
            hint="run the same command again to do the rest",
        )

    def _run_detail(self, steps: Sequence[Step]) -> dict[str, Any]:
        return {
            "steps": [[s.migration.version, s.action] for s in steps],
            "user": self.user,
            "host": self.host,
        }

    def monitor_cancelled(self, error: ServerError) -> bool:
        """A cancel the health monitor caused: retried like a lock timeout (57014)."""
        return error.canceled and self.monitor is not None and self.monitor.consume_cancel()


class _StepRun:
    """One step (a migration or its rollback) run chunk by chunk, with retries and records."""

    def __init__(self, runner: Runner, executor: Executor, side: Session, step: Step) -> None:
        self.runner = runner
        self.executor = executor
        self.side = side  # the lock's session, for the log rows written beside the run
        self.step = step
        self.script = step.script
        self.version = step.migration.version
        self.started = runner.clock()
        header, options = self.script.header, runner.options
        self.budget_ms = header.statement_timeout_ms or options.statement_timeout_ms
        self.lock_timeout_ms = header.lock_timeout_ms or options.lock_timeout_ms
        # The progress row as this run last knew it; every history write moves it from there.
        self.expect = runner.seen.get(self.version, Expect())
        # The refusal its first attempt met in a batch (Runner._run_batch): retried from there.
        self.first: StatementFailed | None = None

    @property
    def store(self) -> HistoryStore:
        return self.runner.store

    def _elapsed_ms(self) -> int:
        return int((self.runner.clock() - self.started) * 1000)

    def transaction(self) -> Transaction:
        """The step as one transaction of a batch (it is one: _batch_at)."""
        statements = self.script.statements
        write = self._record(Chunk(0, len(statements), True), last=True)
        return Transaction(statements, write, self.version, self.lock_timeout_ms, self.budget_ms)

    def committed(self, duration_ms: int) -> StepResult:
        """The step committed in a batch: its events, as a step run alone emits them."""
        m, action, total = self.step.migration, self.step.action, len(self.script.statements)
        self.runner.emit(ev.StepStarted(m.version, m.name, total, 0, action))
        self.runner.emit(ev.StatementDone(m.version, total, total))
        self.runner.emit(ev.StepApplied(m.version, m.name, duration_ms, action))
        status = "applied" if action == "apply" else "reverted"
        return StepResult(m.version, action, status, duration_ms)

    def run(self, first: StatementFailed | None = None) -> StepResult:
        """The step, chunk by chunk; ``first``: what its first attempt met in a batch."""
        self.first = first
        step, script, m = self.step, self.script, self.step.migration
        if _has_backfill(m) and step.action == "apply":
            # The revert's backfill row is stale from now on: without this, a backfill
            # reverted and applied again is found finished. (The apply row goes with the
            # reverted record, in its transaction: until then it may be all that says a
            # never-applied backfill committed batches, which a revert must undo.)
            self.runner.backfills.forget(m.version, "revert")
        if step.kind == "backfill":
            return self._run_backfill()
        done = self._resume_point()
        self.runner.emit(
            ev.StepStarted(m.version, m.name, len(script.statements), done, step.action)
        )
        chunks = self._chunks()
        chunks = [c for c in chunks if c.end > done or c.end == 0]
        committed_any = done > 0
        if len(chunks) > 1 or not chunks[0].transactional:
            # Leave a trace before anything commits, so a killed run is known to have started.
            if step.resume is None:
                self._save_start()
            detail = {"resume_at": done}
            self.store.log(self.side, self.runner.run_id, "migration_started", m.version, detail)
        for i, chunk in enumerate(chunks):
            if i > 0 and self.runner.stop.requested:  # between chunks: done is exactly done
                raise self._stopped(half=committed_any, done=chunk.start)
            try:
                self._any_chunk(chunk, last=i == len(chunks) - 1)
                self.expect = Expect(step.action, chunk.end)
            except StatementFailed as failure:
                raise self._chunk_failed(failure, chunk, committed_any=committed_any) from None
            except MigrationFailed:  # timeouts: the chunk's transaction was rolled back
                if not committed_any and chunk.transactional:
                    self._forget_start()
                raise
            committed_any = True
        duration = self._elapsed_ms()
        status = "applied" if step.action == "apply" else "reverted"
        self.runner.emit(ev.StepApplied(m.version, m.name, duration, step.action))
        return StepResult(m.version, step.action, status, duration)

    def _any_chunk(self, chunk: Chunk, *, last: bool) -> None:
        statements = self.script.statements
        if statements and chunk.end > chunk.start and statements[chunk.start].kind == BACKFILL_KIND:
            self._backfill_chunk(chunk, last=last)
        else:
            self._chunk_with_retries(chunk, last=last)

    def _chunks(self) -> list[Chunk]:
        """The step's transactions: an expansion's phase says them, else the file's
        statements do (chunks_of)."""
        expansion, phase = self.step.expansion, self.step.phase
        if expansion is not None and phase is not None:
            return [Chunk(s, e, t) for s, e, t in expansion.groups(phase)] or [Chunk(0, 0, True)]
        return chunks_of(self.script.statements, transaction=self.script.header.transaction)

    def _backfill_chunk(self, chunk: Chunk, *, last: bool) -> None:
        """An expansion's backfill: pgshift's own UPDATE, run in key-range batches by the
        backfill engine (each batch exactly once, with its own progress row), then the step's
        progress moves past it in a transaction of its own."""
        statement = self.script.statements[chunk.start]
        runner = self.runner
        resumed_here = self.step.resume is not None and (
            self.step.resume.statements_done == chunk.start
        )
        if not resumed_here:  # a finished row of an earlier expand (since undone) is stale
            runner.backfills.forget(self.version, "apply")
        digest = hashlib.sha256(statement.sql.encode()).hexdigest()
        own = self.step.migration.header  # its @batch-key, -size and -pause apply to the copy
        header = Header(
            kind="backfill",
            batch_key=own.batch_key,
            batch_size=own.batch_size,
            batch_pause_ms=own.batch_pause_ms,
        )
        script = Script(self.script.path, header, (statement,), f"sha256:{digest}")
        try:
            self._batches(script, "apply")
        except (HalfApplied, Interrupted) as stopped:
            raise _Stopped(
                self.version,
                self.step.action,
                half=True,
                done=chunk.start,
                total=len(self.script.statements),
                ms=self._elapsed_ms(),
                why=getattr(stopped, "message", str(stopped)),
            ) from None
        self._record_alone(chunk, last=last, half_applied=True)
        runner.emit(ev.StatementDone(self.version, chunk.end, len(self.script.statements)))

    def _record_alone(self, chunk: Chunk, *, last: bool, half_applied: bool) -> None:
        """The history write after batches that committed by themselves, in a transaction of
        its own; a progress row another session moved is PlanChanged, as for any write."""
        try:
            self.executor.run_transaction(
                (),
                self._record(chunk, last=last),
                version=self.version,
                lock_timeout_ms=self.lock_timeout_ms,
                statement_timeout_ms=self.budget_ms,
            )
        except StatementFailed as failure:
            if failure.error.sqlstate == PROGRESS_MOVED:
                raise self._moved(failure.error.message) from None
            raise self._failure(failure, half_applied=half_applied) from None

    def _batches(self, script: Script, action: str) -> None:
        """Run ``script`` (a backfill) to its end with the backfill engine, paced by the run's
        options and bounded by this step's lock and statement timeouts."""
        runner = self.runner
        options = replace(
            runner.options.backfill,
            lock_timeout_ms=self.lock_timeout_ms,
            statement_timeout_ms=self.budget_ms,
            lock_retry_total_ms=runner.options.lock_retry_total_ms,
            retry_cap_ms=runner.options.retry_cap_ms,
        )
        runner.backfills.run(
            self.version,
            script,
            action=action,
            run_id=runner.run_id,
            options=options,
            emit=runner.emit,
            stop=runner.stop,
        )

    def _run_backfill(self) -> StepResult:
        """The step's file is a backfill: its batches run and commit by themselves (the
        backfill's own progress row says how far), then the applied or reverted row is
        written in a transaction of its own. A re-run continues after the last batch."""
        step, script, m, runner = self.step, self.script, self.step.migration, self.runner
        runner.emit(ev.StepStarted(m.version, m.name, len(script.statements), 0, step.action))
        started = {"resume_at": 0, "backfill": True}
        self.store.log(self.side, runner.run_id, "migration_started", m.version, started)
        try:
            self._batches(script, step.action)
        except HalfApplied as stopped:  # stopped between batches, some committed
            raise _Stopped(
                m.version,
                step.action,
                half=True,
                done=0,
                total=1,
                ms=self._elapsed_ms(),
                why=stopped.message,
            ) from None
        except Interrupted:  # stopped before its first batch: nothing of it committed
            raise _Stopped(
                m.version, step.action, half=False, done=0, total=1, ms=self._elapsed_ms()
            ) from None
        except MigrationFailed as failed:  # a batch failed; the batches before it stay
            detail: dict[str, Any] = {
                "sqlstate": failed.sqlstate,
                "message": failed.message,
                "backfill": True,
            }
            with contextlib.suppress(Exception):  # the failure matters more than its log line
                self.store.record_failed(
                    self.side, runner.run_id, m.version, detail, action=step.action
                )
            runner.emit(ev.StepFailed(m.version, m.name, failed.message, step.action))
            raise
        self._record_alone(Chunk(0, 0, True), last=True, half_applied=False)
        duration = self._elapsed_ms()
        status = "applied" if step.action == "apply" else "reverted"
        runner.emit(ev.StepApplied(m.version, m.name, duration, step.action))
        return StepResult(m.version, step.action, status, duration)

    def _chunk_failed(
        self, failure: StatementFailed, chunk: Chunk, *, committed_any: bool
    ) -> Exception:
        """What a refused chunk ends the step with: a stop, a moved progress, or a failure."""
        if failure.error.sqlstate == PROGRESS_MOVED:
            return self._moved(failure.error.message, transactional=chunk.transactional)
        half = committed_any or not chunk.transactional
        if self._stop_caused(failure):
            return self._stopped(half=half, done=chunk.start)
        if not half:
            self._forget_start()
        return self._failure(failure, half_applied=half)

    def _save_start(self) -> None:
        """The progress row that says this step began, moved only from where the run found it."""
        try:
            self.store.save_progress(self.side, self._progress(0), expect=self.expect)
        except ProgressMoved as moved:
            raise self._moved(str(moved)) from None
        self.expect = Expect(self.step.action, 0)

    def _moved(self, why: str, *, transactional: bool = True) -> PlanChanged:
        """Another session moved this migration's progress while the run held the lock."""
        undone = (
            "the statements of this transaction were rolled back"
            if transactional
            else "its last statement ran outside a transaction and may have run beside it"
        )
        return PlanChanged(
            f"{self.script.path}: {why}; {undone}, and the run stopped",
            hint="a session of an earlier run may still be executing: `pgshift health` names"
            " it; run the same command again once it has ended",
        )

    def _stop_caused(self, failure: StatementFailed) -> bool:
        """The chunk was cancelled (or gave up a lock wait) because the run was asked to stop."""
        error = failure.error
        return self.runner.stop.requested and (
            error.canceled or error.sqlstate in RETRIED_SQLSTATES
        )

    def _stopped(self, *, half: bool, done: int) -> _Stopped:
        """Stop here; with nothing of the step committed, it leaves no trace of having begun."""
        if not half:
            self._forget_start()
        total = len(self.script.statements)
        return _Stopped(
            self.version,
            self.step.action,
            half=half,
            done=done,
            total=total,
            ms=self._elapsed_ms(),
        )

    def _resume_point(self) -> int:
        """Statements an interrupted run already did; DriftError if their text changed."""
        resume, script = self.step.resume, self.script
        if resume is None:
            return 0
        done = resume.statements_done
        if done > len(script.statements) or resume.prefix_checksum != prefix_checksum(
            script.statements, done
        ):
            raise DriftError(
                f"{script.path}: the first {done} statement(s) already ran in an interrupted"
                " run, and the file's text for them has changed since",
                hint="restore those statements as they were; only the rest may change",
            )
        return done

    def _forget_start(self) -> None:
        """Nothing of a step committed: drop the progress row its start left, if it left one.

        Otherwise a step that failed cleanly would look half-applied to `status` and `health`.
        Best effort: the failure being reported matters more than this row.
        """
        if self.step.resume is not None:
            return  # the row predates this run and still says where things stand
        with contextlib.suppress(Exception):
            self.store.clear_progress(self.side, self.version)

    def _progress(self, done: int) -> Progress:
        script = self.script
        return Progress(
            version=self.version,
            checksum=script.checksum,
            prefix_checksum=prefix_checksum(script.statements, done),
            statements_done=done,
            run_id=self.runner.run_id,
            updated_at=None,  # type: ignore[arg-type]  # the database's clock
            action=self.step.action,
        )

    # -- one chunk -----------------------------------------------------------------------------

    def _chunk_with_retries(self, chunk: Chunk, *, last: bool) -> None:
        """Run the chunk; retry what concurrency refused, within PGSHIFT_LOCK_RETRY_TOTAL."""
        failure, self.first = self.first, None
        # A step whose first attempt was in a batch began with the batch: its budget did too.
        began = self.started if failure is not None else self.runner.clock()
        retry_deadline = began + self.runner.options.lock_retry_total_ms / 1000
        attempt = 0
        while True:
            if failure is not None:
                attempt += 1
                self._pause_or_raise(failure, attempt, began, retry_deadline)
            remaining = self.budget_ms - self._elapsed_ms()
            if remaining <= 0:
                why = f"took longer than its statement timeout of {self.budget_ms} ms"
                raise MigrationTimeout(
                    f"{self.script.path}: {why}",
                    version=self.version,
                    hint="raise DB_MIGRATION_TIMEOUT or @statement-timeout, or split the file",
                    file=str(self.script.path),
                    reason=why,
                )
            try:
                self._chunk(chunk, last=last, statement_timeout_ms=remaining)
                return
            except StatementFailed as failed:
                failure = failed

    def _pause_or_raise(
        self, failure: StatementFailed, attempt: int, began: float, retry_deadline: float
    ) -> None:
        """After a refused attempt: pause before the next, or raise what ends the step (the
        refusal itself, or the exhausted budget). No retry once asked to stop."""
        options, clock = self.runner.options, self.runner.clock
        yielded = self.runner.monitor_cancelled(failure.error)
        if failure.error.sqlstate not in RETRIED_SQLSTATES and not yielded:
            raise failure
        if self.runner.stop.requested:
            raise failure
        sleep_ms = backoff_ms(attempt, self.lock_timeout_ms, options.retry_cap_ms, self.runner.rng)
        # The whole budget is used: a last pause ends at the deadline, unless what is left is
        # shorter than the shortest pause (the application's window).
        left_ms = int((retry_deadline - clock()) * 1000)
        if left_ms < min(sleep_ms, RETRY_PAUSE_FLOOR * max(1, self.lock_timeout_ms)):
            elapsed_ms = int((clock() - began) * 1000)
            raise self._retries_exhausted(failure, attempt, elapsed_ms, yielded=yielded) from None
        sleep_ms = min(sleep_ms, left_ms)
        self._log_retry(failure, attempt, sleep_ms, yielded=yielded)
        self.runner.sleep(sleep_ms / 1000)
        if self.runner.stop.requested:
            raise failure  # asked to stop during the pause: the run ends here

    def _chunk(self, chunk: Chunk, *, last: bool, statement_timeout_ms: int) -> None:
        statements = self.script.statements[chunk.start : chunk.end]
        write = self._record(chunk, last=last)
        if chunk.transactional:
            self.executor.run_transaction(
                statements,
                write,
                version=self.version,
                lock_timeout_ms=self.lock_timeout_ms,
                statement_timeout_ms=statement_timeout_ms,
            )
        else:
            (statement,) = statements
            self.executor.run_alone(
                statement,
                write,
                version=self.version,
                skip=self._already_done(statement),
                lock_timeout_ms=self.lock_timeout_ms,
                statement_timeout_ms=statement_timeout_ms,
            )
        total = len(self.script.statements)
        self.runner.emit(ev.StatementDone(self.version, chunk.end, total))

    def _already_done(self, stmt: Statement) -> bool:
        """Decide what a resumed concurrent index statement must do, from the catalog.

        An INVALID index left by a failed or interrupted CREATE INDEX CONCURRENTLY would make
        `IF NOT EXISTS` skip the build and leave the table without a usable index: drop and
        rebuild it. A valid one built by an interrupted run whose progress was not recorded yet
        counts as done, and so does an index already gone for a DROP INDEX CONCURRENTLY.
        """
        if stmt.concurrent_index is None:
            return False
        schema, name = stmt.concurrent_index
        found = self.executor.find_index(schema, name)
        interrupted_here = (
            self.step.resume is not None and self.step.resume.statements_done == stmt.index
        )
        if stmt.kind != "IndexStmt":
            return found is None and interrupted_here
        if found is None:
            return False
        if not found.valid:
            self.executor.drop_index(found)
            self.runner.emit(ev.InvalidIndexRebuilt(self.version, found.qualified))
            detail = {"index": found.qualified}
            run_id = self.runner.run_id
            self.store.log(self.side, run_id, "invalid_index_rebuilt", self.version, detail)
            return False
        return interrupted_here

    def _record(self, chunk: Chunk, *, last: bool) -> HistoryWrite:
        """The history write that ends a chunk: progress, or the applied / reverted row."""
        runner, m, expect = self.runner, self.step.migration, self.expect
        if not last:
            return RecordProgress(self._progress(chunk.end), expect)
        if self.step.action == "contract":
            return RecordContracted(m.version, runner.run_id, self._elapsed_ms(), expect)
        if self.step.action == "revert":
            detail = {"user": runner.user, "host": runner.host}
            return RecordReverted(m.version, runner.run_id, self._elapsed_ms(), detail, expect)
        return RecordApplied(
            AppliedMigration(
                version=m.version,
                description=m.description,
                checksum=m.checksum,
                rollback_checksum=m.rollback.checksum if m.rollback else None,
                rollback_sql=m.rollback.text if m.rollback else None,  # for a later downgrade
                applied_at=None,  # type: ignore[arg-type]  # the database's now()
                duration_ms=self._elapsed_ms(),
                applied_by=runner.user,
                host=runner.host,
                run_id=runner.run_id,
                metadata=self._metadata(),
            ),
            expect,
        )

    def _metadata(self) -> dict[str, Any]:
        """The applied row's metadata: the header's annotations, and for an expansion what
        contract and undo will run (kept, so they never depend on deriving them again)."""
        metadata: dict[str, Any] = dict(self.step.migration.header.metadata())
        if self.step.expansion is not None:
            metadata["expand"] = self.step.expansion.record()
        return metadata

    # -- what is logged and raised -------------------------------------------------------------

    def _log_retry(
        self, failure: StatementFailed, attempt: int, sleep_ms: int, *, yielded: bool
    ) -> None:
        detail = failure.error.message
        if yielded:
            detail = "cancelled by the health monitor: sessions piled up behind it"
        stmt = failure.statement
        line = stmt.line if stmt else 0
        self.store.log(
            self.side,
            self.runner.run_id,
            "lock_retry",
            self.version,
            {
                "attempt": attempt,
                "line": line,
                "sleep_ms": sleep_ms,
                "message": detail,
                "sqlstate": failure.error.sqlstate,
                "statement_index": stmt.index if stmt else None,
            },
        )
        self.runner.emit(ev.LockRetry(self.version, line, attempt, sleep_ms, detail))

    def _retries_exhausted(
        self, failure: StatementFailed, attempt: int, elapsed_ms: int, *, yielded: bool
    ) -> MigrationTimeout:
        stmt = failure.statement
        line = stmt.line if stmt else 0
        sqlstate = failure.error.sqlstate or "55P03"
        why = (
            "the health monitor kept cancelling it: sessions piled up behind it"
            if yielded
            else failure.error.message
        )
        detail = {"sqlstate": sqlstate, "message": f"retries exhausted: {why}", "line": line}
        self.store.record_failed(
            self.side, self.runner.run_id, self.version, detail, action=self.step.action
        )
        reason = (
            f"could not take the locks it needs within {self.runner.options.lock_retry_total_ms}"
            f" ms ({attempt} attempts, lock_timeout {self.lock_timeout_ms} ms each, gave up after"
            f" {format_duration_ms(elapsed_ms)}): {why}"
        )
        return MigrationTimeout(
            f"{self.script.path}:{line}: {reason}",
            version=self.version,
            sqlstate=sqlstate,
            hint="find the blocking session with `pgshift health`; raise"
            " PGSHIFT_LOCK_RETRY_TOTAL to wait longer",
            file=str(self.script.path),
            line=stmt.line if stmt else None,
            column=stmt.column if stmt else None,
            statement_index=stmt.index if stmt else None,
            reason=reason,
        )

    def _failure(self, failure: StatementFailed, *, half_applied: bool) -> MigrationFailed:
        step, script, m = self.step, self.script, self.step.migration
        error, stmt = failure.error, failure.statement
        line, column = _error_position(stmt, error.offset)
        primary = self.runner.target.redact(error.message)
        sqlstate = error.sqlstate
        detail: dict[str, Any] = {"sqlstate": sqlstate, "message": primary, "line": line}
        if stmt is not None:
            detail["statement"] = stmt.sql[:2000]
            detail["statement_index"] = stmt.index
        with contextlib.suppress(Exception):  # the failure matters more than its log line
            self.store.record_failed(
                self.side, self.runner.run_id, m.version, detail, action=step.action
            )
        self.runner.emit(ev.StepFailed(m.version, m.name, primary, step.action))
        where = f"{script.path}:{line}" if line else str(script.path)
        reason = primary + (f" (SQLSTATE {sqlstate})" if sqlstate else "")
        message = f"{where}: {reason}"
        facts: dict[str, Any] = {
            "version": m.version,
            "sqlstate": sqlstate,
            "file": str(script.path),
            "line": line or None,
            "column": column or None,
            "statement_index": stmt.index if stmt is not None else None,
            "reason": reason,
        }
        if half_applied:
            return HalfApplied(
                message + f"\nthis {_noun(step)} runs partly outside a transaction and stopped"
                " half-way; its progress is recorded",
                hint="fix the cause and run the same command again: it continues after the"
                " last completed statement",
                **facts,
            )
        if error.canceled:
            return MigrationTimeout(
                message,
                hint="raise DB_MIGRATION_TIMEOUT or @statement-timeout for this file",
                **facts,
            )
        undone = (
            "the migration was rolled back; nothing of it was applied"
            if step.action == "apply"
            else "the rollback's transaction was rolled back; the migration is still applied"
        )
        return MigrationFailed(message + "\n" + undone, hint=error.hint, **facts)


#: A batch's message carries about this much of the server's work (judged from the last
#: message), so that progress still shows every tenth of a second or so.
BATCH_TARGET_S = 0.1
#: ...and at most this many steps or bytes of SQL.
BATCH_MAX_STEPS = 128
BATCH_MAX_BYTES = 1 << 20


class _BatchSize:
    """How many small steps the next message may carry (Executor.run_transactions).

    One round trip per batch instead of per migration keeps the server busy while the client
    records one migration and composes the next (bench/RESULTS.md). The first step goes
    alone; then the batch at most doubles each time, up to what fills BATCH_TARGET_S at the
    pace the last message showed, so a run of slow migrations goes one at a time again.
    """

    def __init__(self) -> None:
        self.steps = 1

    def took(self, steps: int, seconds: float) -> None:
        each = seconds / steps
        fits = int(BATCH_TARGET_S / each) if each > 0 else BATCH_MAX_STEPS
        self.steps = max(1, min(BATCH_MAX_STEPS, 2 * steps, fits))


def _batch_at(steps: Sequence[Step], at: int, size: int) -> list[Step]:
    """The steps from ``at`` that may share one message: up to ``size`` consecutive ones of one
    action, each a single transaction of plain statements (no backfill, no expansion phase,
    nothing resumed); empty when the step at ``at`` is not such a one."""
    group: list[Step] = []
    sql_bytes = 0
    for step in steps[at : at + size]:
        if not _one_transaction(step) or (group and step.action != group[0].action):
            break
        sql_bytes += sum(len(s.sql) for s in step.script.statements)
        if group and sql_bytes > BATCH_MAX_BYTES:
            break
        group.append(step)
    return group


def _one_transaction(step: Step) -> bool:
    """The step is one transaction of plain statements, recorded in it."""
    if step.resume is not None or step.expansion is not None or step.action == "contract":
        return False
    if step.kind == "backfill" or _has_backfill(step.migration):
        return False
    script = step.script
    chunks = chunks_of(script.statements, transaction=script.header.transaction)
    if len(chunks) != 1 or not chunks[0].transactional:
        return False
    return all(s.kind != BACKFILL_KIND for s in script.statements)


def _has_backfill(m: Migration) -> bool:
    """The migration or its rollback file is a `@kind: backfill` (either leaves a progress row)."""
    rollback = m.rollback
    return m.header.kind == "backfill" or (
        rollback is not None and rollback.header.kind == "backfill"
    )


def _noun(step: Step) -> str:
    return "migration" if step.action == "apply" else "rollback"


def _error_position(stmt: Statement | None, offset: int | None) -> tuple[int, int]:
    """The file (line, column) of the error: the statement's start, refined by the server's
    position inside it; (0, 0) when no statement is to blame."""
    if stmt is None:
        return 0, 0
    if offset is None or not 0 <= offset <= len(stmt.sql):
        return stmt.line, stmt.column
    before = stmt.sql[:offset]
    newlines = before.count("\n")
    if not newlines:
        return stmt.line, stmt.column + offset
    return stmt.line + newlines, offset - before.rindex("\n")


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


__all__ = [
    "Chunk",
    "LockBusy",
    "RunOptions",
    "RunResult",
    "RunTarget",
    "Runner",
    "RunnerLock",
    "StepResult",
    "chunks_of",
]
