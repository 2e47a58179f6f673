"""Bounded probe sessions: what health and the in-run monitor read, driver errors translated.

Why it exists: a health run and the monitor beside a migration ask the catalogs questions that
must never hang (every query is bounded by a statement and a lock timeout) and whose failure
must only make one check unknown or skip one sample. A Probe answers those questions as plain
values and raises QueryFailed (errors.py) instead of a driver exception, so ops/health.py and
ops/monitor.py never see psycopg. A Probe comes from the Target (`Target.probe`, a fresh
connection; `Target.probe_pool`, the endpoint's pool) or, for the monitor, from a session lent
by the runner lock (`lent`), where the bounds hold for one transaction only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from pgshift.db import catalog
from pgshift.db.connect import translated
from pgshift.errors import DatabaseUnavailable

if TYPE_CHECKING:
    import psycopg
    import psycopg_pool

    from pgshift.history import History, Session
    from pgshift.model import (
        BlockedSession,
        ConnectionUse,
        InvalidIndex,
        LockState,
        PoolerProbe,
        Replica,
        SessionInfo,
    )

#: Every query of a probe is bounded, so a probe never hangs on a busy server.
STATEMENT_TIMEOUT_MS = 10_000
LOCK_TIMEOUT_MS = 1_000
#: How long a probe waits for a pooled connection before it calls the database unreachable.
POOL_TIMEOUT_S = 5.0

_T = TypeVar("_T")


def configure(conn: psycopg.Connection[tuple[Any, ...]], *, local: bool = False) -> None:
    """Bound every later query of ``conn`` (``local``: of its current transaction only)."""
    catalog.bound_session(conn, STATEMENT_TIMEOUT_MS, LOCK_TIMEOUT_MS, local=local)


class Probe:
    """The health facts of one database, read on one bounded session; QueryFailed on failure."""

    def __init__(self, conn: psycopg.Connection[tuple[Any, ...]], url: str | None) -> None:
        self._conn = conn
        self._url = url

    def _ask(self, question: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        with translated(self._url):
            return question(self._conn, *args, **kwargs)

    def round_trip_ms(self) -> float:
        return self._ask(catalog.round_trip_ms)

    def server_version(self) -> tuple[int, str]:
        """(server_version_num from the handshake, the server's version text)."""
        return int(self._conn.info.server_version), self._ask(catalog.server_version_text)

    def pooler(self) -> PoolerProbe:
        return self._ask(catalog.probe_pooler)

    def connection_use(self) -> ConnectionUse:
        return self._ask(catalog.connection_use)

    def history(self, schema: str) -> History:
        from pgshift.db.store import PostgresHistoryStore

        return self._ask(PostgresHistoryStore(schema).read)

    def migration_lock(self, schema: str) -> LockState | None:
        return self._ask(catalog.migration_lock, schema)

    def last_failures(self, schema: str, event: str) -> dict[str, dict[str, Any]]:
        return self._ask(catalog.last_failures, schema, event=event)

    def invalid_indexes(self) -> list[InvalidIndex]:
        return self._ask(catalog.invalid_index_details)

    def blocked_sessions(self) -> list[BlockedSession]:
        return self._ask(catalog.blocked_sessions)

    def sessions(self, pids: list[int]) -> dict[int, SessionInfo]:
        return self._ask(catalog.sessions, pids)

    def long_transactions(self, floor_ms: int) -> list[SessionInfo]:
        return self._ask(catalog.long_transactions, floor_ms)

    def replicas(self) -> list[Replica]:
        return self._ask(catalog.replicas)

    def cancel_backend(self, pid: int) -> bool:
        return self._ask(catalog.cancel_backend, pid)

    def log(
        self,
        schema: str,
        run_id: str | None,
        event: str,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        """A row in the history log, written on this session (the monitor's samples)."""
        from pgshift.db.store import PostgresHistoryStore

        with translated(self._url):
            PostgresHistoryStore(schema).log(self._conn, run_id, event, None, detail)


@contextmanager
def opened(url: str | None, *, purpose: str, connect_timeout_s: int = 5) -> Iterator[Probe]:
    """A Probe on a fresh autocommit connection, closed after; DatabaseUnavailable when none."""
    from pgshift.db.connect import open_connection

    conn = open_connection(url, purpose=purpose, connect_timeout_s=connect_timeout_s)
    with conn:
        with translated(url):
            configure(conn)
        yield Probe(conn, url)


@contextmanager
def lent(session: Session) -> Iterator[Probe]:
    """A Probe on a session lent by its owner (the runner lock's), for one transaction.

    The bounds are local to that transaction, so the owner's session is left as it was; the
    transaction is rolled back on any error, and a driver error leaves as QueryFailed.
    """
    conn = _connection(session)
    with translated(None), conn.transaction():
        configure(conn, local=True)
        yield Probe(conn, None)


def _connection(session: Session) -> psycopg.Connection[tuple[Any, ...]]:
    import psycopg

    if not isinstance(session, psycopg.Connection):
        raise TypeError(f"a probe needs a PostgreSQL session, not {type(session).__name__}")
    return session


class ProbePool:
    """A pool of bounded probe sessions (the health endpoint's), sized DB_POOL_MIN..MAX.

    Opened without waiting, so the endpoint answers (critical) while the database is down;
    a checkout that waits longer than POOL_TIMEOUT_S is DatabaseUnavailable.
    """

    def __init__(self, url: str | None, *, min_size: int, max_size: int, purpose: str) -> None:
        from psycopg_pool import ConnectionPool

        self._url = url
        self._pool: psycopg_pool.ConnectionPool[Any] = ConnectionPool(
            url or "",
            min_size=min_size,
            max_size=max(max_size, 1),
            kwargs={
                "autocommit": True,
                "application_name": f"pgshift {purpose}",
                "connect_timeout": 5,
            },
            configure=configure,
            timeout=POOL_TIMEOUT_S,
            name="pgshift-health",
            open=False,
        )

    def open(self) -> None:
        self._pool.open(wait=False)

    def close(self) -> None:
        self._pool.close()

    def stats(self) -> dict[str, int]:
        """psycopg_pool's counters: pool_size, pool_available, requests_waiting, ..."""
        return {str(k): int(v) for k, v in self._pool.get_stats().items()}

    @contextmanager
    def probe(self) -> Iterator[Probe]:
        import psycopg_pool

        try:
            conn = self._pool.getconn()
        except psycopg_pool.PoolTimeout:
            raise DatabaseUnavailable(
                f"no connection to the database within {POOL_TIMEOUT_S:.0f}s"
            ) from None
        try:
            yield Probe(conn, self._url)
        finally:
            self._pool.putconn(conn)


__all__ = ["LOCK_TIMEOUT_MS", "STATEMENT_TIMEOUT_MS", "Probe", "ProbePool", "lent", "opened"]
