"""One suite, two runner locks: db/lock.py's RunnerLock and the tests' MemoryLock keep one contract.

The runner (ops/apply.py) relies on its lock for: one holder at a time; a waiter that names who
it waited for (``waited_for``, and ``on_wait`` once) and is refused with LockBusy, naming the
holder, when its wait runs out; a lock given back by ``release`` (twice is harmless); and
``check`` failing loudly once the lock's session is gone, since another runner may then hold
it. The runner's decision tests use MemoryLock, so it must behave like the real one: every test
here runs on both, the real one on each server of the session.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import psycopg
import pytest

from pgshift.db.lock import LockHolder, RunnerLock
from pgshift.errors import LockBusy
from tests.plugins.memory import LockServer, MemoryLock
from tests.plugins.pg import PgServer

AnyLock = RunnerLock | MemoryLock


@dataclass
class Locks:
    """Makes locks on one database, and reads and ends their sessions, for one implementation."""

    make: Callable[[int], AnyLock]  # a lock (not yet taken) that waits up to wait_ms
    pid_of: Callable[[AnyLock], int]  # the server pid of a held lock's session
    kill: Callable[[AnyLock], None]  # the server ends the lock's session


def _memory() -> Locks:
    server = LockServer()

    def pid_of(lock: AnyLock) -> int:
        assert isinstance(lock, MemoryLock) and lock.conn is not None
        return lock.conn.pid

    def kill(lock: AnyLock) -> None:
        assert isinstance(lock, MemoryLock) and lock.conn is not None
        server.kill(lock.conn)

    return Locks(lambda wait_ms: MemoryLock(server, wait_ms), pid_of, kill)


def _postgres(url: str) -> Locks:
    def pid_of(lock: AnyLock) -> int:
        assert isinstance(lock, RunnerLock) and lock.conn is not None
        return int(lock.conn.info.backend_pid)

    def kill(lock: AnyLock) -> None:
        pid = pid_of(lock)
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            deadline = time.monotonic() + 10
            while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone():
                assert time.monotonic() < deadline, f"pid {pid} did not end"
                time.sleep(0.02)

    return Locks(lambda wait_ms: RunnerLock(url, "pgshift", wait_ms), pid_of, kill)


@pytest.fixture(params=["memory", "postgres"])
def locks(request: pytest.FixtureRequest, pg_server: PgServer) -> Iterator[Locks]:
    """Each implementation; the memory one runs beside each server too (it is cheap)."""
    made: list[AnyLock] = []
    maker = _memory() if request.param == "memory" else _postgres(request.getfixturevalue("db_url"))

    def make(wait_ms: int) -> AnyLock:
        made.append(maker.make(wait_ms))
        return made[-1]

    yield Locks(make, maker.pid_of, maker.kill)
    for lock in made:  # a failing test leaves no session holding the database
        lock.release()


def test_an_uncontended_lock_is_taken_at_once_and_checks_held(locks: Locks) -> None:
    lock = locks.make(0)
    waited: list[LockHolder] = []
    lock.acquire(on_wait=waited.append)
    assert lock.waited_for is None and waited == []
    lock.check(every_s=0)
    assert locks.pid_of(lock) > 0


def test_one_holder_at_a_time_and_the_refusal_names_it(locks: Locks) -> None:
    first, second = locks.make(0), locks.make(200)
    first.acquire()
    waited: list[LockHolder] = []
    started = time.monotonic()
    with pytest.raises(LockBusy) as busy:
        second.acquire(on_wait=waited.append)
    assert time.monotonic() - started >= 0.2  # it waited its whole wait, no less
    holder = second.waited_for
    assert holder is not None and holder.pid == locks.pid_of(first)
    assert not holder.earlier_run
    assert holder.application_name == "pgshift lock"
    assert waited == [holder]  # told once, not at every poll
    assert f"pid {holder.pid}" in busy.value.message
    assert busy.value.exit_code == 3
    with pytest.raises(LockBusy, match="not held"):
        second.check(every_s=0)
    first.check(every_s=0)  # the refused waiter took nothing from the holder


def test_a_waiter_gets_the_lock_once_the_holder_releases_it(locks: Locks) -> None:
    first, second = locks.make(0), locks.make(10_000)
    first.acquire()
    holder_pid = locks.pid_of(first)
    waited: list[LockHolder] = []
    letting_go = threading.Timer(0.3, first.release)
    letting_go.start()
    try:
        second.acquire(on_wait=waited.append)
    finally:
        letting_go.join()
    second.check(every_s=0)
    assert second.waited_for is not None and second.waited_for.pid == holder_pid
    assert [h.pid for h in waited] == [holder_pid]
    with pytest.raises(LockBusy, match="not held"):
        first.check(every_s=0)


def test_release_gives_the_lock_back_and_twice_is_harmless(locks: Locks) -> None:
    first, second = locks.make(0), locks.make(0)
    first.acquire()
    first.release()
    first.release()
    second.acquire()
    assert second.waited_for is None
    with pytest.raises(LockBusy, match="not held"):
        first.check(every_s=0)


def test_check_fails_once_the_lock_session_died_and_the_lock_goes_with_it(locks: Locks) -> None:
    lock, next_run = locks.make(0), locks.make(5_000)
    lock.acquire()
    locks.kill(lock)
    with pytest.raises(LockBusy, match="lost the migration lock") as lost:
        lock.check(every_s=0)
    assert lost.value.exit_code == 3
    next_run.acquire()  # the server freed it with the session
    next_run.check(every_s=0)
    lock.release()  # giving back a lock whose session is gone is no error


def test_check_before_acquire_refuses(locks: Locks) -> None:
    with pytest.raises(LockBusy, match="not held"):
        locks.make(0).check(every_s=0)
