"""The in-run health monitor: samples the database beside a long `up` or rollback, and yields.

Why a thread on the lock's session: the runner's connection is busy with the migration's
statement, and the question "who is piling up behind it" has to be asked while that statement
runs; the session that holds the runner lock is otherwise idle, so sampling there costs no
connection of its own. Each sample goes to the history log and to the progress display. When
more than PGSHIFT_HEALTH_ABORT_BLOCKED_SESSIONS sessions have waited longer than
PGSHIFT_HEALTH_ABORT_BLOCKED_FOR behind the runner, the monitor cancels the runner's statement
(`pg_cancel_backend`) and says so through `consume_cancel`, so the runner rolls back and retries
later like a lock timeout instead of stalling the application's traffic.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pgshift import events as ev
from pgshift.errors import QueryFailed

if TYPE_CHECKING:
    from pgshift.config import Settings
    from pgshift.db.probe import Probe
    from pgshift.history import Session
    from pgshift.model import BlockedSession


@dataclass(frozen=True)
class MonitorPolicy:
    interval_ms: int = 30_000
    abort_blocked_sessions: int = 5  # cancel when MORE than this many wait too long; 0: never
    abort_blocked_ms: int = 10_000
    long_transaction_ms: int = 300_000

    @classmethod
    def from_settings(cls, settings: Settings) -> MonitorPolicy:
        return cls(
            interval_ms=max(settings.health.check_interval_ms, 10),
            abort_blocked_sessions=settings.health.abort_blocked_sessions,
            abort_blocked_ms=settings.health.abort_blocked_ms,
            long_transaction_ms=settings.health.long_transaction_warn_ms,
        )


@dataclass(frozen=True)
class Verdict:
    behind: tuple[BlockedSession, ...]  # waiting on the runner, directly or down the queue
    over: tuple[BlockedSession, ...]  # of those, waiting longer than the abort threshold
    cancel: bool


def judge(blocked: Sequence[BlockedSession], runner_pid: int, policy: MonitorPolicy) -> Verdict:
    """Pure: should the runner's statement be cancelled to let the queue behind it drain?"""
    from pgshift.ops.health_rules import blocked_behind  # only once a sample is taken

    behind = tuple(blocked_behind(blocked, runner_pid))
    over = tuple(b for b in behind if b.waiting_ms >= policy.abort_blocked_ms)
    cancel = policy.abort_blocked_sessions > 0 and len(over) > policy.abort_blocked_sessions
    return Verdict(behind, over, cancel)


class Monitor:
    """Start with the runner's backend pid once the migration lock is held; stop in `finally`."""

    def __init__(self, schema: str, policy: MonitorPolicy, emit: ev.Emit = ev.ignore) -> None:
        self.schema = schema
        self.policy = policy
        self.emit = emit
        self.samples = 0
        self.cancels = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()
        self._cancelled_at: float | None = None
        self._runner_pid = 0
        self._run_id: str | None = None
        self._session: Session | None = None

    # -- runner side ----------------------------------------------------------------------------

    def start(self, runner_pid: int, run_id: str, session: Session) -> None:
        """Sample on ``session``: the one that holds the runner lock, otherwise idle.

        Sampling there costs no connection of its own; the driver serialises the monitor's
        queries with the runner's log writes on it (db/probe.lent bounds them).
        """
        self._runner_pid = runner_pid
        self._run_id = run_id
        self._session = session
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="pgshift-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def consume_cancel(self) -> bool:
        """True once per cancel the monitor issued recently: the runner's QueryCanceled was ours.

        "Recently" bounds a cancel that arrived while the runner was between statements (and so
        cancelled nothing) from turning a later statement timeout into a retry.
        """
        with self._guard:
            at, self._cancelled_at = self._cancelled_at, None
        window = max(5.0, 2 * self.policy.interval_ms / 1000)
        return at is not None and time.monotonic() - at <= window

    # -- monitor thread -------------------------------------------------------------------------

    def _loop(self) -> None:
        # The first sample comes after one interval: a short run samples nothing, and imports
        # nothing for it either (this thread's imports would hold the GIL the run needs).
        while not self._stop.wait(self.policy.interval_ms / 1000):
            from pgshift.db.probe import lent

            session = self._session
            if session is None or session.closed:
                return  # the lock's session is gone; the runner finds out on its own
            try:
                with lent(session) as probe:
                    self._sample(probe)
            except QueryFailed:
                pass  # a failed sample is skipped; the run must not notice
            except Exception:  # noqa: S110 - a monitor bug must never break a migration
                pass

    def _sample(self, probe: Probe) -> None:
        blocked = probe.blocked_sessions()
        verdict = judge(blocked, self._runner_pid, self.policy)
        long = [
            s
            for s in probe.long_transactions(self.policy.long_transaction_ms)
            if s.pid != self._runner_pid
        ]
        lags = [r.lag_ms for r in probe.replicas() if r.lag_ms is not None]
        cancelled = False
        if verdict.cancel:
            with self._guard:
                self._cancelled_at = time.monotonic()  # before the signal: the runner races us
            cancelled = probe.cancel_backend(self._runner_pid)
            if cancelled:
                self.cancels += 1
            else:
                with self._guard:
                    self._cancelled_at = None
        longest = max((b.waiting_ms for b in verdict.behind), default=0)
        message = (
            f"{len(verdict.behind)} session(s) waiting behind the migration"
            + (f" (longest {longest} ms)" if verdict.behind else "")
            + f", {len(blocked)} waiting on locks in all, {len(long)} long transaction(s)"
            + (f", replica lag {max(lags)} ms" if lags else "")
        )
        if cancelled:
            message += (
                f"; cancelled the migration's statement: {len(verdict.over)} session(s) waited"
                f" longer than {self.policy.abort_blocked_ms} ms"
            )
        detail = {
            "runner_pid": self._runner_pid,
            "blocked_behind_runner": len(verdict.behind),
            "blocked_over_threshold": len(verdict.over),
            "longest_wait_ms": longest,
            "blocked_total": len(blocked),
            "long_transactions": len(long),
            "replication_lag_ms": max(lags) if lags else None,
            "cancelled": cancelled,
            "blocked_pids": [b.session.pid for b in verdict.behind],
        }
        probe.log(self.schema, self._run_id, "health_sample", detail)
        self.samples += 1
        self.emit(
            ev.HealthSample(
                run_id=self._run_id or "",
                blocked_behind=len(verdict.behind),
                longest_wait_ms=longest,
                blocked_total=len(blocked),
                long_transactions=len(long),
                replication_lag_ms=max(lags) if lags else None,
                cancelled=cancelled,
                message=message,
            )
        )


def monitor_for(settings: Settings, emit: ev.Emit) -> Monitor | None:
    """The monitor a run should have: None when DB_HEALTH_CHECK_ENABLED is false."""
    if not settings.health.check_enabled:
        return None
    return Monitor(settings.connection.schema, MonitorPolicy.from_settings(settings), emit)


__all__ = ["Monitor", "MonitorPolicy", "Verdict", "judge", "monitor_for"]
