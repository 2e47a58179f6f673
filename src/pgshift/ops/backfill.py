"""The batch loop of a backfill: key-range batches of one transaction each, paced, resumable.

A `@kind: backfill` migration (SPEC 14) holds one UPDATE, DELETE or INSERT ... SELECT written
for the whole table. run_backfill finds its key in the catalog, fixes the key range, and runs
the statement rewritten over consecutive key ranges (rewrite/backfill.py), each batch in its
own transaction together with its progress row (db/backfill.py), until the range is done. A
killed, failed or stopped backfill continues after its last committed batch when it is run
again, and no batch is ever applied twice.

Pacing: the batch size adapts so that a batch takes about PGSHIFT_BACKFILL_BATCH_TIME (a
batch's row locks are held for that long at most, and a lock wait behind it is that short);
`@batch-pause` waits between batches; a replica lagging more than PGSHIFT_BACKFILL_MAX_LAG
pauses the loop. Each batch counts, just before it commits, the sessions waiting on its locks
(db/backfill.py): when some did, the loop pauses briefly and aims its next batches at half the
time (down to PGSHIFT_BACKFILL_BATCH_TIME / MAX_SHRINK), since a session that meets a row of
the batch under way waits for the whole batch. The aim grows back only once nobody has waited
for QUIET_S: a table the application works on is still worked on one batch later, and the
chance that a batch catches a waiter grows with the square of its time, so growing back after
every quiet batch (as it first did) spent most of the run at the long batches that made
the application wait (bench/RESULTS.md).
A batch that meets a lock (lock_timeout), a deadlock or a serialization failure is retried
with backoff, like any statement, within PGSHIFT_LOCK_RETRY_TOTAL.
A stop request (SIGINT/SIGTERM, ops/stopping.py) is honoured between batches.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from pgshift import events as ev
from pgshift.errors import (
    HalfApplied,
    InputError,
    MigrationFailed,
    MigrationTimeout,
    Problem,
    UsageError,
)
from pgshift.execution import QUERY_CANCELED, RETRIED_SQLSTATES
from pgshift.ops.backoff import backoff_ms

if TYPE_CHECKING:
    from pgshift.config import Settings
    from pgshift.db.backfill import BackfillSession, BackfillState, BatchDone, BatchFailed
    from pgshift.db.target import Target
    from pgshift.model import Migration, RollbackScript, Statement
    from pgshift.ops.stopping import StopRequest
    from pgshift.plan import Script

    BackfillScript = Migration | RollbackScript | Script

#: `@batch-size` when the file does not say (SPEC 14).
DEFAULT_BATCH_SIZE = 5_000
#: A batch grows or shrinks by at most this factor from one batch to the next: one slow batch
#: (a checkpoint, a cold cache) must not make the next one tiny, nor a fast one huge.
MAX_STEP = 2.0
#: While sessions wait on its batches, a backfill aims its batches at down to this fraction of
#: PGSHIFT_BACKFILL_BATCH_TIME: a session that meets a locked row waits for the batch to end,
#: so shorter batches are shorter waits (bench/bench_backfill.py measures the probe's p99).
MAX_SHRINK = 8
#: With nobody waiting for QUIET_S, the aim grows back by this factor per batch.
REGROW = 1.25
#: Seconds without a session waiting on a batch before the aim grows back.
QUIET_S = 10.0


@dataclass(frozen=True)
class BackfillOptions:
    """How a backfill is paced and bounded; from_settings reads them from the settings."""

    batch_time_ms: int = 200
    max_lag_ms: int = 10_000  # 0: never pause for replicas
    lock_timeout_ms: int = 500
    lock_retry_total_ms: int = 60_000
    statement_timeout_ms: int = 300_000  # per batch
    retry_cap_ms: int = 10_000
    max_batch_size: int = 1_000_000
    progress_every_s: float = 1.0
    lag_every_s: float = 1.0
    #: After a batch that sessions waited on: pause this long (they get their rows first) and
    #: aim the next batches at a shorter time, down to batch_time_ms / MAX_SHRINK.
    waiter_pause_ms: int = 20
    #: Seconds without waiters before the aim grows back towards batch_time_ms.
    quiet_s: float = QUIET_S

    @classmethod
    def from_settings(cls, settings: Settings) -> BackfillOptions:
        return cls(
            batch_time_ms=settings.backfill.batch_time_ms,
            max_lag_ms=settings.backfill.max_lag_ms,
            lock_timeout_ms=settings.runner.lock_timeout_ms,
            lock_retry_total_ms=settings.runner.lock_retry_total_ms,
            statement_timeout_ms=settings.runner.migration_timeout_ms,
        )


@dataclass(frozen=True)
class BackfillResult:
    """What a backfill did: over its whole life (rows, keys, batches) and in this run."""

    version: str
    action: str
    table: str
    key: tuple[str, ...]
    rows_done: int  # rows the statement changed, every run together
    keys_done: int
    batches: int
    batches_this_run: int
    duration_ms: int  # this run
    resumed: bool  # an earlier run had committed batches


def next_batch_size(size: int, elapsed_ms: float, target_ms: int, maximum: int) -> int:
    """The next batch's size, so that it takes about ``target_ms`` at the rate just seen.

    Proportional to the rate of the batch that took ``elapsed_ms`` for ``size`` keys, moved by
    at most MAX_STEP either way, and kept between 1 and ``maximum``.
    """
    if target_ms <= 0:
        return max(1, min(size, maximum))
    ideal = size * target_ms / max(elapsed_ms, 1.0)
    bounded = min(max(ideal, size / MAX_STEP), size * MAX_STEP)
    return max(1, min(int(bounded), maximum))


def next_aim(
    target_ms: float, full_ms: int, *, waiters: int, quiet_for_s: float, quiet_s: float
) -> float:
    """The batch time to aim at next, from the aim now and who waited on the last batch.

    Halved when sessions waited on the batch (down to ``full_ms / MAX_SHRINK``); grown back by
    REGROW per batch (up to ``full_ms``) only once nobody has waited for ``quiet_s``: a table
    the application works on is still worked on a batch later.
    """
    if waiters:
        return max(full_ms / MAX_SHRINK, target_ms / 2)
    if quiet_for_s >= quiet_s:
        return min(float(full_ms), target_ms * REGROW)
    return target_ms


@dataclass
class _Loop:
    """The state of one run of one backfill: its session, where it is, and its clock."""

    session: BackfillSession
    state: BackfillState
    version: str
    action: str
    statement: Statement
    path: str
    options: BackfillOptions
    run_id: str
    emit: ev.Emit
    stop: StopRequest | None
    sleep: Callable[[float], None]
    clock: Callable[[], float]
    rng: random.Random
    size: int
    pause_ms: int
    started: float = 0.0
    target_ms: float = 0.0  # the batch time aimed at now: shorter while sessions wait
    waited: float = float("-inf")  # when a session last waited on a batch
    waiters_said: float = float("-inf")
    keys_this_run: int = 0
    batches_this_run: int = 0
    said: float = float("-inf")
    lag_checked: float = float("-inf")

    def run(self) -> None:
        while True:
            self._honour_stop()
            self._wait_for_replicas()
            bound = self.session.next_bound(self.state, self.size)
            if bound is None:
                return
            upper, keys = bound
            began = self.clock()
            done = self._batch_with_retries(upper, keys)
            if done is None:  # another session moved the progress: go on from there
                continue
            rows = done.rows
            elapsed_ms = (self.clock() - began) * 1000
            self.state = dataclasses.replace(
                self.state,
                done_key=upper,
                rows_done=self.state.rows_done + rows,
                keys_done=self.state.keys_done + keys,
                batches=self.state.batches + 1,
                finished=upper == self.state.upper_key,
            )
            self.keys_this_run += keys
            self.batches_this_run += 1
            self._aim(done.waiters)
            if keys >= self.size:  # a short last batch says nothing about the rate
                self.size = next_batch_size(
                    self.size,
                    elapsed_ms,
                    round(self.target_ms),
                    self.options.max_batch_size,
                )
            self._progress(force=self.state.finished)
            if self.state.finished:
                return
            if done.waiters:
                self._yield_to_waiters(done.waiters)
            if self.pause_ms:
                self.sleep(self.pause_ms / 1000)

    def _aim(self, waiters: int) -> None:
        """Move the batch time aimed at: halve it while sessions wait on the batches (down to
        PGSHIFT_BACKFILL_BATCH_TIME / MAX_SHRINK), grow it back once nobody has for QUIET_S."""
        full = self.options.batch_time_ms
        if full <= 0:
            return  # fixed batch sizes
        now = self.clock()
        if waiters:
            self.waited = now
        self.target_ms = next_aim(
            self.target_ms, full, waiters=waiters, quiet_for_s=now - self.waited,
            quiet_s=self.options.quiet_s,
        )  # fmt: skip

    def _yield_to_waiters(self, waiters: int) -> None:
        """Sessions waited on the batch just committed: let them have their rows first."""
        pause_ms = self.options.waiter_pause_ms
        now = self.clock()
        if now - self.waiters_said >= self.options.progress_every_s:  # one line a second
            self.waiters_said = now
            self.emit(
                ev.BackfillPaused(
                    self.version,
                    "lock-waiters",
                    pause_ms,
                    f"{waiters} session(s) waited on the last batch's rows; batches now aim"
                    f" at {round(self.target_ms)} ms",
                )
            )
        if pause_ms > 0:
            self.sleep(pause_ms / 1000)

    def _batch_with_retries(self, upper: tuple[str, ...], keys: int) -> BatchDone | None:
        from pgshift.db.backfill import BackfillMoved, BatchFailed

        deadline = self.clock() + self.options.lock_retry_total_ms / 1000
        attempt = 0
        while True:
            try:
                return self.session.run_batch(
                    self.state,
                    upper,
                    keys,
                    run_id=self.run_id,
                    lock_timeout_ms=self.options.lock_timeout_ms,
                    statement_timeout_ms=self.options.statement_timeout_ms,
                )
            except BackfillMoved:
                moved = self.session.read(self.version, self.action)
                assert moved is not None
                self.state = moved
                return None
            except BatchFailed as failed:
                self._honour_stop()
                sqlstate = failed.error.sqlstate
                if sqlstate not in RETRIED_SQLSTATES:
                    raise self._failure(failed) from None
                attempt += 1
                pause_ms = backoff_ms(
                    attempt, self.options.lock_timeout_ms, self.options.retry_cap_ms, self.rng
                )
                if self.clock() + pause_ms / 1000 > deadline:
                    raise self._failure(failed, attempts=attempt) from None
                self.emit(
                    ev.LockRetry(
                        self.version, self.statement.line, attempt, pause_ms, failed.error.message
                    )
                )
                self.sleep(pause_ms / 1000)

    def _failure(self, failed: BatchFailed, *, attempts: int = 0) -> MigrationFailed:
        """The error of a batch that will not be retried; the committed batches stay."""
        where = f"{self.path}:{self.statement.line}"
        done = f"{self.state.keys_done:,} rows done in {self.state.batches:,} committed batches"
        error = failed.error
        if attempts:
            return MigrationTimeout(
                f"{where}: a backfill batch could not take its locks within"
                f" {self.options.lock_retry_total_ms} ms ({attempts} attempts): {error.message}"
                f" ({done})",
                version=self.version,
                sqlstate=error.sqlstate,
                hint="find the blocking session with `pgshift health`; run again to continue",
            )
        if error.sqlstate == QUERY_CANCELED:
            return MigrationTimeout(
                f"{where}: a backfill batch was cancelled or ran past its statement timeout of"
                f" {self.options.statement_timeout_ms} ms: {error.message} ({done})",
                version=self.version,
                sqlstate=error.sqlstate,
                hint="run again to continue after the last committed batch",
            )
        return MigrationFailed(
            f"{where}: a backfill batch failed: {error.message} ({done})",
            version=self.version,
            sqlstate=error.sqlstate,
            hint=error.hint or "fix the cause and run again: it continues after the last batch",
        )

    def _honour_stop(self) -> None:
        stop = self.stop
        if stop is None or not stop.requested:
            return
        if self.state.batches == 0:
            raise stop.error(
                f"backfill {self.version} stopped by {stop.signal_name} before it began"
            )
        raise HalfApplied(
            f"{self.path}: backfill stopped by {stop.signal_name} after"
            f" {self.state.keys_done:,} rows ({self.state.batches:,} committed batches)",
            version=self.version,
            hint="run again: the backfill continues after its last committed batch",
        )

    def _wait_for_replicas(self) -> None:
        """Pause while a replica's replay lags more than PGSHIFT_BACKFILL_MAX_LAG."""
        limit = self.options.max_lag_ms
        if limit <= 0 or self.clock() - self.lag_checked < self.options.lag_every_s:
            return
        while True:
            self.lag_checked = self.clock()
            lag = self.session.replica_lag_ms()
            if lag is None or lag <= limit:
                return
            pause_ms = 1000
            self.emit(
                ev.BackfillPaused(
                    self.version,
                    "replica-lag",
                    pause_ms,
                    f"a replica's replay lags {lag} ms (PGSHIFT_BACKFILL_MAX_LAG: {limit} ms)",
                )
            )
            self.sleep(pause_ms / 1000)
            self._honour_stop()

    def _progress(self, *, force: bool) -> None:
        now = self.clock()
        if not force and now - self.said < self.options.progress_every_s:
            return
        self.said = now
        seconds = max(now - self.started, 1e-6)
        self.emit(
            ev.BackfillProgress(
                version=self.version,
                keys_done=self.state.keys_done,
                estimate=self.state.rows_estimate,
                rows_done=self.state.rows_done,
                rows_per_s=self.keys_this_run / seconds,
                batch_size=self.size,
                batches=self.state.batches,
                action=self.action,
            )
        )


def _statement(script: BackfillScript) -> Statement:
    if script.header.kind != "backfill":
        raise UsageError(f"{script.path} is not a backfill (its header has no @kind: backfill)")
    if len(script.statements) != 1:
        raise InputError(
            [Problem(str(script.path), 1, "a backfill holds exactly one data statement")]
        )
    return script.statements[0]


def run_backfill(
    target: Target,
    version: str,
    script: BackfillScript,
    *,
    action: str = "apply",
    run_id: str | None = None,
    options: BackfillOptions | None = None,
    emit: ev.Emit = ev.ignore,
    stop: StopRequest | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
) -> BackfillResult:
    """Run (or resume) the backfill ``script`` of migration ``version`` on ``target`` to its end.

    ``script`` is the migration (``action`` "apply") or its rollback file ("revert"); its
    checksum ties the progress row to the statement, so an edited file is refused as drift
    while a backfill is under way. pgshift's own tables must exist (Target.prepare). The
    caller records the migration as applied afterwards; a run that finds the backfill
    finished does nothing and says so. Raises MigrationFailed (a batch failed: the batches
    before it stay committed), MigrationTimeout, HalfApplied (stopped after some batches),
    Interrupted (stopped before any), DriftError, InputError (the key cannot be used with
    this statement).
    """
    import uuid

    from pgshift.db.backfill import BackfillSession, key_facts
    from pgshift.rewrite.backfill import NotABackfill, batch_statements, shape_of

    options = options or BackfillOptions()
    run_id = run_id or str(uuid.uuid4())
    statement = _statement(script)
    header = script.header
    try:
        shape = shape_of(statement.sql)
        facts = key_facts(target.session, shape.key_table, header.batch_key)
        statements = batch_statements(statement.sql, facts.columns)
    except NotABackfill as exc:
        raise InputError([Problem(str(script.path), statement.line, str(exc))]) from None
    session = BackfillSession(target.session, target.schema, facts)
    state = session.start(version, action, script.checksum, run_id)
    size = min(header.batch_size or DEFAULT_BATCH_SIZE, options.max_batch_size)
    emit(
        ev.BackfillStarted(
            version, facts.table, facts.columns, state.rows_estimate, state.keys_done, size, action
        )
    )
    loop = _Loop(
        session=session,
        state=state,
        version=version,
        action=action,
        statement=statement,
        path=str(script.path),
        options=options,
        run_id=run_id,
        emit=emit,
        stop=stop,
        sleep=sleep,
        clock=clock,
        rng=rng or random.Random(),
        size=size,
        pause_ms=header.batch_pause_ms or 0,
        started=clock(),
        target_ms=float(options.batch_time_ms),
    )
    previous_cancel = stop.cancel if stop is not None else None
    if stop is not None:
        stop.cancel = session.cancel
    try:
        if not state.finished:
            session.prepare(statements)
            loop.run()
            if loop.state.upper_key is None and not loop.state.finished:
                session.finish_empty(loop.state, run_id)
    finally:
        if stop is not None:
            stop.cancel = previous_cancel
    final = loop.state
    duration_ms = int((clock() - loop.started) * 1000)
    emit(
        ev.BackfillFinished(
            version, final.rows_done, final.keys_done, final.batches, duration_ms, action
        )
    )
    return BackfillResult(
        version=version,
        action=action,
        table=facts.table,
        key=facts.columns,
        rows_done=final.rows_done,
        keys_done=final.keys_done,
        batches=final.batches,
        batches_this_run=loop.batches_this_run,
        duration_ms=duration_ms,
        resumed=state.batches > 0,
    )


class Backfills(Protocol):
    """How the runner (ops/apply.py) runs a backfill step: TargetBackfills on a database, an
    in-memory fake in tests (tests/plugins/memory.py), so the runner's decisions around a
    backfill (records, failures, stops) are tested without a server."""

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
        """Run or resume the backfill to its end (run_backfill's contract)."""
        ...

    def forget(self, version: str, action: str) -> None:
        """Drop the progress row of ``version``'s ``action`` backfill (db/backfill.forget)."""
        ...


class TargetBackfills:
    """Backfills on a database target, on the target's own session (the runner's: it holds
    the fence, and the in-run monitor watches it)."""

    def __init__(self, target: Target) -> None:
        self.target = target

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
        return run_backfill(
            self.target,
            version,
            script,
            action=action,
            run_id=run_id,
            options=options,
            emit=emit,
            stop=stop,
        )

    def forget(self, version: str, action: str) -> None:
        from pgshift.db.backfill import forget

        forget(self.target.session, self.target.schema, version, action)
