"""How a run is asked to stop: SIGINT and SIGTERM become a request the runner honours (SPEC 3).

Why it is shaped this way: a signal handler that raises (Python's KeyboardInterrupt) can strike
anywhere, for instance between a non-transactional statement and the progress row that records
it, so that a re-run would execute it twice. Here the handlers only *note* the request and, when
the run must not wait, ask the executor to cancel the statement the server is running; the
runner itself stops at the next boundary between steps or chunks, where it knows exactly what is
done, logs `interrupted` and says whether a re-run is needed.

* SIGINT (Ctrl-C): a person wants the prompt back. The running statement is cancelled at once
  (a transactional step rolls back whole) and nothing new starts.
* SIGTERM (Kubernetes, systemd): the running statement gets a grace period
  (PGSHIFT_STOP_GRACE, default 10 s, below Kubernetes' 30 s before SIGKILL) to finish, and is
  cancelled only when it runs longer. A second signal cancels at once.
* While the run only waits for the migration lock, nothing has started: the handler raises
  Interrupted straight away.

Signals reach only the main thread, so a run in another thread (a fleet pool, a library user's
worker) keeps the process's own handlers and is stopped by its caller instead.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

from pgshift.errors import Interrupted

#: The signals a run handles; SIGALRM is the grace period's timer.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """What the signals asked of one run, read by the runner between steps and chunks."""

    def __init__(self, grace_s: float = 10.0) -> None:
        self.grace_s = grace_s
        self.signum: int | None = None
        #: Cancels the statement the server runs for this run, if one is running and it is safe
        #: to (the executor decides); set by the runner once it has its executor.
        self.cancel: Callable[[], object] | None = None
        #: True while the run only waits for the lock: nothing to finish, stop at once.
        self.waiting = False

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    def error(self, message: str) -> Interrupted:
        """The clean stop: nothing is left half-done (exit 130 for SIGINT, 143 for SIGTERM)."""
        return Interrupted(message, signum=self.signum or signal.SIGINT)

    def on_signal(self, signum: int, frame: FrameType | None = None) -> None:
        """SIGINT / SIGTERM: note the request; cancel now, or after the grace period."""
        first = self.signum is None
        if first:
            self.signum = signum
        if self.waiting:
            raise self.error(f"interrupted by {self.signal_name} while waiting for the lock")
        if signum == signal.SIGTERM and first and self.grace_s > 0 and _has_alarm():
            signal.setitimer(signal.ITIMER_REAL, self.grace_s)
        else:
            self._cancel()

    def on_alarm(self, signum: int, frame: FrameType | None = None) -> None:
        """The grace period is over: cancel whatever still runs."""
        self._cancel()

    def _cancel(self) -> None:
        if self.cancel is not None:
            self.cancel()


def _has_alarm() -> bool:
    return hasattr(signal, "setitimer") and hasattr(signal, "SIGALRM")


@contextlib.contextmanager
def trapped(request: StopRequest) -> Iterator[StopRequest]:
    """Route SIGINT and SIGTERM to ``request`` for the duration; restore the old handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = {s: signal.signal(s, request.on_signal) for s in STOP_SIGNALS}
    if _has_alarm():
        previous[signal.SIGALRM] = signal.signal(signal.SIGALRM, request.on_alarm)
    try:
        yield request
    finally:
        if _has_alarm():
            signal.setitimer(signal.ITIMER_REAL, 0)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
