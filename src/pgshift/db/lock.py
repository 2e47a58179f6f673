"""The session advisory lock that lets one runner at a time change the schema.

It lives on its own idle autocommit connection so no migration transaction ever holds it, and it
is waited for by polling `pg_try_advisory_lock`, so the wait is bounded and the refusal can name
the holder instead of queueing forever.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pgshift.db.connect import open_connection
from pgshift.errors import DatabaseUnavailable, LockBusy

if TYPE_CHECKING:
    import psycopg

    from pgshift.db.pool import SessionKind, SessionPool


def lock_key(schema: str) -> int:
    """A stable signed 64-bit key per history schema (two projects in one database coexist).

    The key is the target's identity (database, tenant schema): an advisory lock lives in one
    database, so the database is part of it already, and a fleet's tenant target keeps its
    history in a schema of its own (``<tenant>_pgshift``, fleet_targets.tenant_history_schema),
    so its key differs from every other tenant's. The default target's key is unchanged:
    deployments that hold it today keep excluding each other.
    """
    digest = hashlib.sha256(f"pgshift:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def lock_key_parts(schema: str) -> tuple[int, int]:
    """(classid, objid) of the key as pg_locks shows a bigint advisory lock."""
    return _key_parts(lock_key(schema))


def fence_key(schema: str) -> int:
    """The key every runner's executing session holds for as long as its run lasts.

    Why a second key: the runner lock lives on an idle session, which the server drops the
    moment the runner's process dies, while the session executing a migration statement goes
    on until that statement ends and may still commit it. A new run that holds the runner lock
    waits for this key too, so none of its statements runs beside an orphan of an earlier run.
    """
    digest = hashlib.sha256(f"pgshift-fence:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def gate_key(schema: str) -> int:
    """The key the lock's session holds, while a batch is in flight, to keep the batch's later
    transactions from starting once the run is asked to stop (db/execute.py): each of them
    checks it first, without keeping it."""
    digest = hashlib.sha256(f"pgshift-gate:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _key_parts(key: int) -> tuple[int, int]:
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    return unsigned >> 32, unsigned & 0xFFFF_FFFF


#: Called once the lock is taken, with the lock session's server pid and the wait callback:
#: checks from a second session that the lock is really held, and fences off the sessions of
#: earlier runs (Target.after_lock); raises to refuse the run.
Verify = Callable[[int, "Callable[[LockHolder], None] | None"], None]

#: Called when the lock is given back (Target.before_unlock: the fence goes with it).
Release = Callable[[], None]


@dataclass(frozen=True)
class LockHolder:
    """A session that keeps a run waiting: the lock's holder, or an earlier run's orphan.

    ``earlier_run``: the session still executes a statement of a run whose runner lock is gone
    (its process died); ``doing`` says what it runs (from the migration's marker, never the
    statement's text, which may carry data) and for how long.
    """

    pid: int
    application_name: str
    since: str
    state: str
    earlier_run: bool = False
    doing: str = ""

    def describe(self) -> str:
        name = self.application_name or "(no application_name)"
        if self.earlier_run:
            doing = f", {self.doing}" if self.doing else ""
            return f"pid {self.pid} ({name}), {self.state}{doing}"
        return f"pid {self.pid} ({name}), connected since {self.since}, {self.state}"


_HOLDER_SQL = """
SELECT a.pid, coalesce(a.application_name, ''), a.backend_start::text, coalesce(a.state, ''),
  coalesce(extract(epoch FROM clock_timestamp() - a.query_start)::int, 0),
  coalesce(substring(a.query FROM '^/\\* pgshift [a-z]+ \\S+ [0-9]{14} \\*/'), '')
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.pid <> pg_backend_pid()
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.classid = %(classid)s::oid AND l.objid = %(objid)s::oid AND l.objsubid = 1
"""


def find_holder(
    conn: psycopg.Connection[tuple[object, ...]], schema: str, *, fence: bool = False
) -> LockHolder | None:
    """Who holds the runner lock (or, with ``fence``, which earlier run's session is alive)."""
    classid, objid = _key_parts(fence_key(schema) if fence else lock_key(schema))
    row = conn.execute(_HOLDER_SQL, {"classid": classid, "objid": objid}).fetchone()
    if row is None:
        return None
    pid, name, since, state = int(str(row[0])), str(row[1]), str(row[2]), str(row[3])
    if not fence:
        return LockHolder(pid, name, since, state)
    marker = str(row[5]).strip("/* ").removeprefix("pgshift ")
    doing = f"running {marker.split()[0]} {marker.split()[-1]}" if marker else "running"
    if state != "active":
        doing = ""
    elif int(str(row[4])):
        doing += f" for {row[4]} s"
    return LockHolder(pid, name, since, state, earlier_run=True, doing=doing)


def hold_fence(
    conn: psycopg.Connection[tuple[object, ...]],
    schema: str,
    wait_ms: int,
    on_wait: Callable[[LockHolder], None] | None = None,
) -> None:
    """Take the fence key on the runner's executing session (``conn``), once every session of
    an earlier run on this target has ended.

    Bounded by ``wait_ms`` (PGSHIFT_RUNNER_LOCK_WAIT): an orphan ends when its statement does
    (within about a second of its client's death, by client_connection_check_interval, for
    statements that check it), and the refusal names it. It is never terminated: it holds no
    lock of ours, and cancelling a statement half-way is not pgshift's call to make for a
    session it cannot prove is abandoned.
    """
    key = fence_key(schema)
    deadline = time.monotonic() + wait_ms / 1000
    delay = 0.02
    notified = False
    while True:
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
        if row is not None and row[0]:
            return
        holder = find_holder(conn, schema, fence=True)
        if holder is not None and not notified and on_wait is not None:
            on_wait(holder)
            notified = True
        if time.monotonic() >= deadline:
            who = holder.describe() if holder is not None else "a session that just ended"
            raise LockBusy(
                "a session of an earlier pgshift run on this database is still executing a"
                f" migration statement: {who}; nothing was run",
                hint="it ends when its statement does; if its client is gone for good, end it"
                " with pg_terminate_backend(pid), or raise PGSHIFT_RUNNER_LOCK_WAIT",
            )
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 1.5, 0.25)


def release_fence(conn: psycopg.Connection[tuple[object, ...]], schema: str) -> None:
    """Give the fence key back (the session may live on for other work of the command)."""
    conn.execute("SELECT pg_advisory_unlock(%s)", (fence_key(schema),))


class RunnerLock:
    """Context manager: hold the migration lock for the duration of a run."""

    def __init__(
        self,
        url: str | None,
        schema: str,
        wait_ms: int,
        purpose: str = "lock",
        *,
        allow_pooler: bool = False,
        verify: Verify | None = None,
        on_release: Release | None = None,
        pool: SessionPool | None = None,
    ) -> None:
        self.url = url
        #: Where the lock's session comes from and goes back to, when a fleet lends one
        #: (db/pool.py): after the unlock it holds no lock and no transaction.
        self.pool = pool
        self.verify = verify
        self.on_release = on_release
        self.allow_pooler = allow_pooler
        self.schema = schema
        self.wait_ms = wait_ms
        self.purpose = purpose
        self.conn: psycopg.Connection[tuple[object, ...]] | None = None
        self.waited_for: LockHolder | None = None
        self._checked_at = time.monotonic()

    def _kind(self) -> SessionKind:
        from pgshift.db.pool import SessionKind

        return SessionKind(self.url, self.purpose, keepalive=True)

    def acquire(self, on_wait: Callable[[LockHolder], None] | None = None) -> None:
        if self.pool is not None:
            conn = self.pool.take(self._kind())
        else:
            conn = open_connection(self.url, purpose=self.purpose, keepalive=True)
        key = lock_key(self.schema)
        deadline = time.monotonic() + self.wait_ms / 1000
        delay = 0.05
        notified = False
        try:
            while True:
                row = _try_lock(conn, key)
                if row is not None and row[0]:
                    self.conn = conn
                    server_pid = self._refuse_pooler(conn, int(str(row[1])))
                    if self.verify is not None:
                        self._verified(server_pid, on_wait)
                    return
                holder = find_holder(conn, self.schema)
                if holder is not None:
                    self.waited_for = holder
                if not notified and on_wait is not None and holder is not None:
                    on_wait(holder)
                    notified = True
                if time.monotonic() >= deadline:
                    who = holder.describe() if holder else "a session that just released it"
                    raise LockBusy(
                        f"another pgshift run holds the migration lock: {who}",
                        hint="wait for it to finish, or raise PGSHIFT_RUNNER_LOCK_WAIT",
                    )
                time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
                delay = min(delay * 1.5, 0.5)
        except BaseException:
            conn.close()
            raise

    def _verified(
        self, server_pid: int, on_wait: Callable[[LockHolder], None] | None = None
    ) -> None:
        """Ask the second session whether the lock is really held, and wait for the sessions
        of earlier runs there; release the lock if either refuses."""
        assert self.verify is not None
        try:
            self.verify(server_pid, on_wait)
        except BaseException:
            self.release()
            raise

    def _refuse_pooler(self, conn: psycopg.Connection[tuple[object, ...]], server_pid: int) -> int:
        """Refuse to run through a connection pooler unless told that it keeps sessions.

        A session advisory lock only means something if every later statement runs on the same
        server session; a transaction-mode pooler (pgbouncer's default for apps) hands each
        transaction another one, so two runners could both "hold" the lock. A pooler shows
        itself by announcing a backend pid that is not the server's.
        """
        announced = int(conn.info.backend_pid)
        if server_pid == announced or self.allow_pooler:
            return server_pid
        self.release()
        raise DatabaseUnavailable(
            "a connection pooler answers for the database (it announced pid"
            f" {announced}, the server session is pid {server_pid}): in transaction mode the"
            " migration lock and session settings would not hold, so pgshift will not migrate"
            " through it",
            hint="point --database-url / DATABASE_URL at PostgreSQL itself; if the pooler is in"
            " session mode, set PGSHIFT_ALLOW_POOLER=true",
        )

    def check(self, every_s: float = 1.0) -> None:
        """Fail loudly if the lock's connection died: another runner may now hold it.

        Asks the server at most once per ``every_s``: a round trip per migration would cost
        more than many migrations take, and a lost session is found within a second anyway.
        """
        import psycopg

        if self.conn is None:
            raise LockBusy("the migration lock is not held")
        if self.conn.closed:
            raise LockBusy("lost the migration lock: its connection to the database was closed")
        now = time.monotonic()
        if now - self._checked_at < every_s:
            return
        self._checked_at = now
        try:
            self.conn.execute("SELECT 1")
        except psycopg.Error:
            raise LockBusy(
                "lost the migration lock: its connection to the database was closed"
            ) from None

    def close_gate(self) -> bool:
        """Hold the gate key (gate_key) on the lock's idle session: no later transaction of the
        batch in flight starts from now on. False when the session cannot (it is gone)."""
        import psycopg

        if self.conn is None:
            return False
        try:
            self.conn.execute("SELECT pg_advisory_lock(%s)", (gate_key(self.schema),))
        except psycopg.Error:
            return False
        return True

    def open_gate(self) -> None:
        """Give the gate key back once the batch's message is answered."""
        import psycopg

        if self.conn is not None:
            with contextlib.suppress(psycopg.Error):
                self.conn.execute("SELECT pg_advisory_unlock(%s)", (gate_key(self.schema),))

    def release(self) -> None:
        if self.conn is None:
            return
        import psycopg

        if self.on_release is not None:
            with contextlib.suppress(psycopg.Error):
                self.on_release()
        conn, self.conn = self.conn, None
        try:
            conn.execute("SELECT pg_advisory_unlock(%s)", (lock_key(self.schema),))
        except psycopg.Error:
            conn.close()  # the session is gone, and with it the lock
            return
        except BaseException:
            conn.close()
            raise
        if self.pool is not None:
            self.pool.give_back(self._kind(), conn)
        else:
            conn.close()

    def __enter__(self) -> RunnerLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _try_lock(conn: psycopg.Connection[tuple[object, ...]], key: int) -> tuple[object, ...] | None:
    """(``pg_try_advisory_lock``, the server session's pid: what the pooler check compares with
    the pid the handshake announced), in one round trip; an engine without advisory locks is
    refused in plain words."""
    import psycopg

    try:
        return conn.execute("SELECT pg_try_advisory_lock(%s), pg_backend_pid()", (key,)).fetchone()
    except (psycopg.errors.UndefinedFunction, psycopg.errors.FeatureNotSupported) as exc:
        raise DatabaseUnavailable(
            "this database does not offer session advisory locks"
            f" ({exc.sqlstate}: {str(exc).strip()}), so pgshift cannot make sure only one"
            " runner changes it at a time; it will not migrate it",
            hint="see docs/distributed.md for the engines pgshift supports",
        ) from None
