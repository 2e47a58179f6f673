"""Work done beside this process by a forked copy of it: the one place pgshift forks itself.

Why a fork: reading and linting thousands of files is CPU-bound Python, and a command has a
second core idle. A forked child starts in a millisecond with every module and value of the
parent already in place (nothing to import, nothing to send it), and sends back only its
result, pickled through a pipe. Why only sometimes: forking a process that runs other
threads can copy a lock some thread holds, and there is no fork off POSIX; so with a second
thread, one core, or ``PGSHIFT_WORKERS=1``, `helper()` gives None and the caller does the
whole work itself. The child never returns into the caller's code: it exits with os._exit,
so no buffered output is flushed twice and no connection of the parent is closed by it.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import threading
import warnings
from collections.abc import Callable
from typing import Generic, TypeVar

from pgshift.concurrency import Helper

T = TypeVar("T")


def _cores() -> int:
    """The cores this process may use: its CPU affinity, and a container's CPU quota."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    quota = cgroup_cpus()
    return min(count, quota) if quota is not None else count


def cgroup_cpus(root: str = "/sys/fs/cgroup") -> int | None:
    """Whole CPUs of the cgroup's quota (a Kubernetes CPU limit), or None when it has none.

    A container limited to one CPU still sees every core of its node in its affinity; a
    helper there would only take turns with this process, so a quota under two says no.
    """
    try:
        with open(os.path.join(root, "cpu.max")) as fh:  # cgroup v2: "<quota> <period>"
            parts = fh.read().split()
    except OSError:
        v1 = os.path.join(root, "cpu")
        try:  # cgroup v1
            with (
                open(os.path.join(v1, "cpu.cfs_quota_us")) as quota,
                open(os.path.join(v1, "cpu.cfs_period_us")) as period,
            ):
                parts = [quota.read().strip(), period.read().strip()]
        except OSError:
            return None
    if len(parts) != 2 or parts[0] in ("max", "-1"):
        return None
    try:
        quota_us, period_us = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    return max(1, quota_us // period_us) if period_us > 0 and quota_us > 0 else None


def when_needed(work: Callable[[], T]) -> Forked[T] | None:
    """A Helper for callers that may never need one: it decides whether forking is safe only
    when some work is handed over (a small project never pays for the decision)."""
    return start(work) if helper() is not None else None


def helper() -> Helper | None:
    """A Helper when forking is safe and worth it here, else None."""
    from pgshift.config import workers

    if workers() < 2:
        return None
    if not hasattr(os, "fork") or threading.active_count() > 1 or _cores() < 2:
        return None
    return start


class Forked(Generic[T]):
    """A child computing one value; `result` reads it and reaps the child."""

    def __init__(self, pid: int, fd: int) -> None:
        self._pid = pid
        self._fd = fd
        self._done = False

    def result(self) -> T | None:
        """The child's value, unpickled as it arrives (never a whole copy of its bytes)."""
        if self._done:
            return None
        value: T | None = None
        try:
            with os.fdopen(self._fd, "rb", closefd=False) as stream:
                value = pickle.load(stream)  # noqa: S301 - our own child's bytes
        except (EOFError, pickle.UnpicklingError, OSError, ValueError, AttributeError):
            value = None  # a child that failed or died mid-write: the caller does the work
        except BaseException:
            self.cancel()  # interrupted while waiting: take the child down with us
            raise
        return value if self._finish() == 0 else None

    def cancel(self) -> None:
        if self._done:
            return
        with contextlib.suppress(OSError):
            os.kill(self._pid, signal.SIGKILL)
        self._finish()

    def _finish(self) -> int:
        """Close the pipe and reap the child; its wait status (0: it exited 0)."""
        self._done = True
        os.close(self._fd)
        try:
            return os.waitpid(self._pid, 0)[1]
        except ChildProcessError:
            return -1


def start(work: Callable[[], T]) -> Forked[T] | None:
    """Run ``work`` in a forked child; None when the fork itself fails."""
    try:
        read_end, write_end = os.pipe()
    except OSError:
        return None
    try:
        with warnings.catch_warnings():
            # Python 3.12+ warns about forking with threads; helper() never does, and a test
            # that calls start() directly forks a child that only computes and exits.
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
    except OSError:
        os.close(read_end)
        os.close(write_end)
        return None
    if pid == 0:  # the child: compute, hand the value over, and leave without cleaning up
        code = 1
        try:
            os.close(read_end)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            value = work()
            # Pickled straight into the pipe: never a whole copy of it in memory here either.
            with os.fdopen(write_end, "wb") as out:
                pickle.dump(value, out, protocol=pickle.HIGHEST_PROTOCOL)
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    return Forked(pid, read_end)
