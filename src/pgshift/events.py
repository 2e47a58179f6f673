"""What a run reports while it works; the CLI renders these, nothing below it prints."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class RunStarted:
    run_id: str
    versions: tuple[str, ...]


@dataclass(frozen=True)
class RunnerLockWaiting:
    holder: str  # who holds the migration lock, already phrased for a person


@dataclass(frozen=True)
class EarlierRunWaiting:
    """The run holds the lock and waits for a session of an earlier run that still executes
    a statement (its process died first); nothing runs until that session has ended."""

    session: str  # which session, and what it runs, already phrased for a person


@dataclass(frozen=True)
class PlanOvertaken:
    """A planned step's resume point moved forward since the plan was made; the run goes on
    from there instead of refusing."""

    detail: str


@dataclass(frozen=True)
class StepStarted:
    version: str
    name: str
    statements: int
    resumed_from: int  # statements already done by an earlier, interrupted run
    action: str = "apply"


@dataclass(frozen=True)
class StatementDone:
    version: str
    index: int
    total: int


@dataclass(frozen=True)
class LockRetry:
    version: str
    line: int
    attempt: int
    sleep_ms: int
    detail: str


@dataclass(frozen=True)
class InvalidIndexRebuilt:
    version: str
    index: str


@dataclass(frozen=True)
class StepApplied:
    version: str
    name: str
    duration_ms: int
    action: str = "apply"  # "revert": the step ran the rollback file


@dataclass(frozen=True)
class StepSkipped:
    version: str
    reason: str
    action: str = "apply"


@dataclass(frozen=True)
class StepFailed:
    version: str
    name: str
    message: str
    action: str = "apply"


@dataclass(frozen=True)
class RunFinished:
    run_id: str
    applied: int
    duration_ms: int


@dataclass(frozen=True)
class Interrupted:
    """SIGINT or SIGTERM stopped the run at a boundary (ops/stopping.py); nothing new starts.

    ``version`` is the step under way when it stopped (None: between steps); ``half_applied``
    says that part of it stays committed and a re-run must finish it.
    """

    run_id: str
    signal: str  # "SIGINT", "SIGTERM"
    version: str | None
    half_applied: bool
    steps_done: int


@dataclass(frozen=True)
class HealthSample:
    """One sample of the in-run monitor (monitor.py); ``cancelled``: it aborted a statement."""

    run_id: str
    blocked_behind: int
    longest_wait_ms: int
    blocked_total: int
    long_transactions: int
    replication_lag_ms: int | None
    cancelled: bool
    message: str


@dataclass(frozen=True)
class BackupProgress:
    """Bytes written (backup) or replayed (restore) so far; ``total_bytes`` when it is known."""

    phase: str  # "dump", "verify", "restore"
    done_bytes: int
    total_bytes: int | None = None


@dataclass(frozen=True)
class BackupTaken:
    """A backup is safe on disk (before `up` or a rollback, or by hand)."""

    backup_id: str
    reason: str  # "before-up", "before-rollback", "manual"
    size_bytes: int
    sha256: str
    versions: int  # migrations applied when it was taken


@dataclass(frozen=True)
class BackfillStarted:
    """A backfill (SPEC 14) starts its batches, or resumes after ``keys_done`` keys."""

    version: str
    table: str  # the table whose key the batches follow
    key: tuple[str, ...]
    estimate: int | None  # the planner's row estimate of that table; None: never analysed
    keys_done: int  # keys done by an earlier run (a resume), else 0
    batch_size: int
    action: str = "apply"


@dataclass(frozen=True)
class BackfillProgress:
    """After a batch (at most about once a second): how far the backfill got."""

    version: str
    keys_done: int  # keys the committed batches covered: what the estimate counts
    estimate: int | None
    rows_done: int  # rows the statement changed
    rows_per_s: float  # keys per second over this run
    batch_size: int  # the size the next batch will have
    batches: int
    action: str = "apply"

    @property
    def percent(self) -> float | None:
        """Keys done of the estimate, at most 100 (the estimate is only an estimate)."""
        if not self.estimate:
            return None
        return min(100.0, 100.0 * self.keys_done / self.estimate)

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the current rate, when the estimate and a rate are known."""
        if not self.estimate or self.rows_per_s <= 0:
            return None
        return max(0.0, (self.estimate - self.keys_done) / self.rows_per_s)


@dataclass(frozen=True)
class BackfillPaused:
    """The backfill waits between batches: a replica lags behind (``reason`` "replica-lag"),
    or sessions waited on the last batch's locks ("lock-waiters", at most once a second)."""

    version: str
    reason: str
    pause_ms: int
    detail: str


@dataclass(frozen=True)
class BackfillFinished:
    """Every batch of the key range is committed."""

    version: str
    rows_done: int
    keys_done: int
    batches: int
    duration_ms: int  # this run's share
    action: str = "apply"


@dataclass(frozen=True)
class Working:
    """A long task that is not a run of its own (a proof on a scratch database: `validate
    --roundtrip` and `--trace`, `rollback dry-run --simulate`, `baseline`) says what it is doing
    now, so that nobody stares at a silent terminal for 25 s. ``done`` of ``total`` when the
    work is countable (migrations), else None."""

    task: str  # "roundtrip", "trace", "simulate", "baseline"
    doing: str  # for a person: "making a scratch database", "proving 2025..._add_users"
    done: int | None = None
    total: int | None = None


@dataclass(frozen=True)
class WorkDone:
    """The task of the Working events before it ended (also after a failure)."""

    task: str
    duration_ms: int


Event = (
    RunStarted
    | RunnerLockWaiting
    | EarlierRunWaiting
    | PlanOvertaken
    | StepStarted
    | StatementDone
    | LockRetry
    | InvalidIndexRebuilt
    | StepApplied
    | StepSkipped
    | StepFailed
    | RunFinished
    | Interrupted
    | HealthSample
    | BackupProgress
    | BackupTaken
    | BackfillStarted
    | BackfillProgress
    | BackfillPaused
    | BackfillFinished
    | Working
    | WorkDone
)
Emit = Callable[[Event], None]


def ignore(_: Event) -> None:
    """An emitter for library callers that do not watch progress."""


@contextlib.contextmanager
def working(emit: Emit, task: str) -> Iterator[Callable[..., None]]:
    """``say(doing, done=None, total=None)`` emits Working for ``task``; WorkDone on leaving,
    however the block ends, so a display never keeps spinning after an error."""
    import time

    started = time.monotonic()

    def say(doing: str, done: int | None = None, total: int | None = None) -> None:
        emit(Working(task, doing, done, total))

    try:
        yield say
    finally:
        emit(WorkDone(task, int((time.monotonic() - started) * 1000)))


# -- fleets (ops/fleet.py): one target's events wrapped with its name, and the fleet's own --------


@dataclass(frozen=True)
class TargetEvent:
    """An event of one target's run, with the target's name."""

    target: str
    event: Event


@dataclass(frozen=True)
class WaveStarted:
    wave: str  # "canary" or "rest"
    targets: int


@dataclass(frozen=True)
class TargetStarted:
    target: str


@dataclass(frozen=True)
class TargetFinished:
    target: str
    status: str  # "applied", "up-to-date", "failed", "not-started"
    exit_code: int
    applied: int
    message: str | None


@dataclass(frozen=True)
class FleetProgress:
    """Targets done (finished well), failed and not yet finished, after each target."""

    done: int
    failed: int
    remaining: int


FleetEvent = TargetEvent | WaveStarted | TargetStarted | TargetFinished | FleetProgress
FleetEmit = Callable[[FleetEvent], None]


def ignore_fleet(_: FleetEvent) -> None:
    """A fleet emitter for library callers that do not watch progress."""
