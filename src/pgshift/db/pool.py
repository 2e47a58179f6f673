"""Sessions a fleet hands from one target to the next target of the same database.

Why it exists: a fleet target opened two sessions of its own (the runner's and the lock's) and
closed them when it was done. For schema-per-tenant fleets that was most of the server's work
per tenant beyond the migrations themselves: every new backend costs the server its start-up
(3.5-5.5 ms of CPU here) and then a cold catalog cache, which the tenant's first queries pay
again (bench/RESULTS.md). A pool keeps the sessions of a finished target and lends them to
the next target of the same URL, so a fleet of any size opens at most two sessions per worker.

A session comes back to the pool only in the state a new one starts in:

* only when idle (no transaction open, the connection alive);
* after ``DISCARD ALL``, which ends everything a session can carry from one target to the next:
  session settings a migration SET (search_path, role, timeouts), temporary tables, prepared
  statements, cursors, LISTENs and session advisory locks (a run's fence is given back before,
  but a migration may take its own);
* psycopg never prepares statements on its own on these sessions (``prepare_threshold`` None):
  it forgets its prepared statements on a DISCARD ALL only the first time it sees that command
  on a session, so from the second reset on it would EXECUTE names the server no longer has.
  pgshift's own prepared history writes (db/prepared.py) belong to each run's executor, which
  prepares them again on the session it is given;
* with pgshift's session settings applied again when lent (connect.apply_session_settings),
  the next target's search_path among them.

The pool keeps at most ``max_idle`` sessions (a fleet passes two per worker: what its workers
can hold at once), closing the one given back longest ago beyond that: a fleet of many separate
databases, whose sessions no later target can use, must not keep a connection open to each
database it has done until it ends (a server's max_connections would run out).

A session whose reset fails, or that is not idle, is closed instead. The owner of a session
decides whether it may come back at all: a Target lends its runner session back only after a
run that did not fail (Target.close), since a failed run may have left a cancel request in
flight that would otherwise land on the next target's statement.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pgshift.db.connect import apply_session_settings, open_connection

if TYPE_CHECKING:
    import psycopg

    Connection = psycopg.Connection[tuple[object, ...]]


@dataclass(frozen=True)
class SessionKind:
    """Which sessions may stand in for each other: same URL, same purpose (so
    `pg_stat_activity` still names it right), same keepalive settings."""

    url: str | None
    purpose: str
    keepalive: bool = False


class SessionPool:
    """Idle sessions waiting for the next target, by kind; safe to share between threads.

    Use it as a context manager: the sessions still in the pool are closed at the end.
    """

    def __init__(self, max_idle: int = 16) -> None:
        self._lock = threading.Lock()
        self.max_idle = max(0, max_idle)
        #: Idle sessions, the one given back longest ago first (a fleet's are a few dozen).
        self._idle: list[tuple[SessionKind, Connection]] = []
        self._closed = False
        #: Sessions opened and lent again, for the tests and the benchmarks.
        self.opened = 0
        self.reused = 0

    def take(self, kind: SessionKind, *, search_path: str | None = None) -> Connection:
        """A session of ``kind``: one from the pool with pgshift's settings applied again, or a
        new one (open_connection) when none is idle or the idle one turns out to be gone."""
        import psycopg

        while True:
            with self._lock:
                conn = self._pop(kind)
            if conn is None:
                break
            try:
                apply_session_settings(conn, search_path)
            except psycopg.Error:
                conn.close()
                continue
            with self._lock:
                self.reused += 1
            return conn
        conn = open_connection(
            kind.url, purpose=kind.purpose, keepalive=kind.keepalive, search_path=search_path
        )
        conn.prepare_threshold = None
        with self._lock:
            self.opened += 1
        return conn

    def _pop(self, kind: SessionKind) -> Connection | None:
        """The idle session of ``kind`` given back last, out of the pool; None when none is."""
        for i in range(len(self._idle) - 1, -1, -1):
            if self._idle[i][0] == kind:
                return self._idle.pop(i)[1]
        return None

    def give_back(self, kind: SessionKind, conn: Connection) -> None:
        """Keep ``conn`` for the next target after resetting it (DISCARD ALL); close it when it
        is not idle, its reset fails, or the pool is closed; close the session given back
        longest ago when the pool holds more than ``max_idle``."""
        import psycopg
        from psycopg.pq import TransactionStatus

        if (
            self._closed
            or conn.closed
            or conn.broken
            or conn.info.transaction_status != TransactionStatus.IDLE
        ):
            conn.close()
            return
        try:
            conn.execute("DISCARD ALL", prepare=False)
        except psycopg.Error:
            conn.close()
            return
        evicted: list[Connection] = [conn]
        with self._lock:
            if not self._closed:
                self._idle.append((kind, conn))
                excess = max(0, len(self._idle) - self.max_idle)
                evicted = [old for _, old in self._idle[:excess]]
                del self._idle[:excess]
        for old in evicted:
            old.close()

    def close(self) -> None:
        """Close every session in the pool; sessions given back after this are closed."""
        with self._lock:
            self._closed = True
            idle = [conn for _, conn in self._idle]
            self._idle.clear()
        for conn in idle:
            conn.close()

    def __enter__(self) -> SessionPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
