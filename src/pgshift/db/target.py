"""Target: the one owner of everything pgshift does to one database.

Why it exists: a command used to open a connection for every question it asked (history, the
server's version, the backup's snapshot, the backup's log row, the lock, the runner, the
monitor: eight for one `up`). A Target opens its session once, on first use, reads the server's
facts from that session's handshake, and lends the same session to every step of the command;
the runner lock lives on a second, otherwise idle session, which the in-run monitor samples on.
So `status` and a no-op `up` cost one connection (a no-op `up` that records its answer for
next time, ops/uptodate.py, one more short one after it); `up` with work opens two more after
that one has closed (never more than two at once), and a backup adds only pg_dump's.
Until a command needs its psycopg session, history is read over a short libpq session of its
own (db/readonly.py): a read-only command and a no-op `up` never import psycopg.

Orchestrators (ops/) take a Target, never a URL; the URL stays inside it (child processes such
as pg_dump get it through the backup's password file, never on a command line).

A fleet's tenant target is a Target with a ``tenant_schema``: its session runs with that schema
as its search_path (so a migration's unqualified names land in the tenant), and its history
schema is the tenant's own (fleet_targets.tenant_history_schema), which gives it its own lock.
A fleet also hands its Targets a SessionPool (db/pool.py): each then takes its runner and
lock sessions from the pool and gives them back, reset, when it closes after a run that did not
fail, so the next target of the same database starts on warm sessions instead of new ones.
Before a run, the engine is detected and the runner lock is verified from this session
(verify_runner_lock): an engine that accepts the lock call without locking is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pgshift.db.connect import open_connection, redact

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from contextlib import AbstractContextManager

    import psycopg

    from pgshift.config import Settings
    from pgshift.db.execute import PostgresExecutor
    from pgshift.db.lock import LockHolder, RunnerLock
    from pgshift.db.pool import SessionKind, SessionPool
    from pgshift.db.probe import Probe, ProbePool
    from pgshift.db.store import PostgresHistoryStore
    from pgshift.history import History, Session


@dataclass(frozen=True)
class ServerFacts:
    """What the server said about itself when the session connected (no query needed)."""

    version_num: int  # e.g. 150004
    database: str
    backend_pid: int  # as announced; a pooler announces its own
    engine: str | None = None  # "postgresql", "citus", ...: known once a run verified its lock

    @property
    def major(self) -> int:
        return self.version_num // 10000


#: Purposes of commands that only read: their history read may skip psycopg (read_history).
READ_ONLY_PURPOSES = frozenset({"status", "health", "validate", "check"})


#: Engines that speak the PostgreSQL protocol and say who they are (SPEC section 12).
POSTGRESQL, CITUS, COCKROACHDB, YUGABYTEDB, AURORA_DSQL = (
    "postgresql",
    "citus",
    "cockroachdb",
    "yugabytedb",
    "aurora-dsql",
)


def engine_of(version: str, extensions: frozenset[str] = frozenset()) -> str:
    """The engine behind ``version()``'s text and the installed extensions' names."""
    low = version.lower()
    if "cockroachdb" in low:
        return COCKROACHDB
    if "-yb-" in low or "yugabyte" in low:
        return YUGABYTEDB
    if "dsql" in low:
        return AURORA_DSQL
    if "citus" in extensions:
        return CITUS
    return POSTGRESQL


_VERIFY_SQL = """
SELECT version(),
  coalesce((SELECT array_agg(extname::text) FROM pg_catalog.pg_extension), '{}'),
  EXISTS (SELECT 1 FROM pg_catalog.pg_locks l
          WHERE l.locktype = 'advisory' AND l.granted AND l.pid = %(pid)s
            AND l.database = (SELECT oid FROM pg_catalog.pg_database
                              WHERE datname = current_database())
            AND l.classid = %(classid)s::oid AND l.objid = %(objid)s::oid AND l.objsubid = 1),
  pg_try_advisory_lock(%(fence)s)
"""


class Target:
    """One database: its session, its runner lock, its history store and its server facts.

    ``purpose`` names the session in `pg_stat_activity` ("pgshift runner", "pgshift status"),
    which is how `health` tells a live run from a stuck lock.
    """

    def __init__(
        self,
        url: str | None,
        *,
        schema: str = "pgshift",
        purpose: str = "runner",
        runner_lock_wait_ms: int = 60_000,
        allow_pooler: bool = False,
        settings: Settings | None = None,
        tenant_schema: str | None = None,
        pool: SessionPool | None = None,
    ) -> None:
        self._url = url
        self._pool = pool
        self._settings = settings
        self.schema = schema
        self.tenant_schema = tenant_schema
        self._engine: str | None = None
        self.purpose = purpose
        self.runner_lock_wait_ms = runner_lock_wait_ms
        self.allow_pooler = allow_pooler
        self._session: psycopg.Connection[tuple[Any, ...]] | None = None
        self._store: PostgresHistoryStore | None = None
        self._lock: RunnerLock | None = None
        self._fenced = False  # this session holds the fence (db/lock.hold_fence)
        self._fence_wait: Callable[[LockHolder], None] | None = None
        #: check_history_access passed since the run began (start_run asks before its backup;
        #: prepare, under the lock, need not ask again). Forgotten when the run gives its lock back.
        self._access_checked = False

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        url: str | None,
        *,
        purpose: str = "runner",
        tenant_schema: str | None = None,
        pool: SessionPool | None = None,
    ) -> Target:
        """The Target of ``url`` (and of its tenant schema: then settings.connection.schema must
        already name the tenant's history schema, as the fleet sets it), its sessions taken
        from ``pool`` when given."""
        return cls(
            url,
            tenant_schema=tenant_schema,
            pool=pool,
            schema=settings.connection.schema,
            purpose=purpose,
            runner_lock_wait_ms=settings.runner.lock_wait_ms,
            allow_pooler=settings.connection.allow_pooler,
            settings=settings,
        )

    @property
    def settings(self) -> Settings:
        """The settings this target was opened with (timeouts, backups, the monitor)."""
        if self._settings is None:
            from pgshift.errors import UsageError

            raise UsageError("this Target has no settings: open it with pgshift.connect(settings)")
        return self._settings

    # -- identity -----------------------------------------------------------------------------

    @property
    def url(self) -> str | None:
        """The connection URL, password included: for child processes and nothing else."""
        return self._url

    def child_conninfo(
        self, application_name: str = "pgshift backup"
    ) -> tuple[str | None, str | None]:
        """(conninfo without the password, the password) for a libpq child process: what
        process.child_connection takes, so that the URL is parsed here, in db/."""
        from pgshift.db.connect import child_conninfo

        return child_conninfo(self._url, application_name=application_name)

    def redact(self, text: str) -> str:
        """``text`` with this target's password (and URL) masked."""
        return redact(text, self._url)

    # -- the session --------------------------------------------------------------------------

    @property
    def session(self) -> psycopg.Connection[tuple[Any, ...]]:
        """The command's connection (autocommit), opened on first use and reused after."""
        if self._session is None or self._session.closed:
            if self._pool is not None:
                self._session = self._pool.take(self._kind(), search_path=self.tenant_schema)
            else:
                self._session = open_connection(
                    self._url, purpose=self.purpose, search_path=self.tenant_schema
                )
            if self._fenced:
                # The run's session was lost and is opened again: the old one may still be
                # executing, so the new one waits for it like for any earlier run's.
                self._fence(self._fence_wait)
        return self._session

    @property
    def facts(self) -> ServerFacts:
        info = self.session.info
        return ServerFacts(
            int(info.server_version), str(info.dbname), int(info.backend_pid), self._engine
        )

    def after_lock(
        self, lock_pid: int, on_wait: Callable[[LockHolder], None] | None = None
    ) -> None:
        """What a run does the moment it holds the runner lock, before it reads any history.

        Verifies the lock from this session (verify_runner_lock), then takes the fence on this
        session, the one that executes the migrations: once every session of an earlier run on
        this target has ended (db/lock.hold_fence). The history is read after this, so what
        an orphan committed is seen, and nothing runs beside it. The verification tries the
        fence in its own round trip; only when an earlier run's session still holds it does
        the run wait for it here.
        """
        if self.verify_runner_lock(lock_pid):
            self._fenced, self._fence_wait = True, on_wait
            return
        self._fence(on_wait)

    def _fence(self, on_wait: Callable[[LockHolder], None] | None = None) -> None:
        from pgshift.db.lock import hold_fence

        self._fenced = False
        hold_fence(self.session, self.schema, self.runner_lock_wait_ms, on_wait)
        self._fenced = True
        self._fence_wait = on_wait

    def before_unlock(self) -> None:
        """Give the fence back with the runner lock: this session may serve other reads."""
        from pgshift.db.lock import release_fence

        fenced, self._fenced = self._fenced, False
        self._access_checked = False
        if fenced and self._session is not None and not self._session.closed:
            release_fence(self._session, self.schema)

    def verify_runner_lock(self, lock_pid: int) -> bool:
        """Detect the engine and check, from this session, that the lock session holds the lock;
        in the same round trip, try the fence (db/lock.fence_key): True when it is now held.

        One round trip, once per run. An engine whose advisory lock call returns true without
        locking anything (CockroachDB's compatibility stubs, for one) shows nothing in pg_locks:
        pgshift refuses it, since two runners could then change one target at once.
        """
        from pgshift.db.lock import fence_key, lock_key_parts, release_fence
        from pgshift.errors import DatabaseUnavailable

        classid, objid = lock_key_parts(self.schema)
        row = self.session.execute(
            _VERIFY_SQL,
            {"pid": lock_pid, "classid": classid, "objid": objid, "fence": fence_key(self.schema)},
        ).fetchone()
        assert row is not None
        self._engine = engine_of(str(row[0]), frozenset(row[1] or ()))
        if not row[2]:
            if row[3]:
                release_fence(self.session, self.schema)
            raise DatabaseUnavailable(
                f"the migration lock was granted, but another session cannot see it held"
                f" (engine: {self._engine}): this database does not enforce session advisory"
                " locks, so two runners could change it at once; pgshift will not migrate it",
                hint="see docs/distributed.md for what pgshift supports on each engine",
            )
        return bool(row[3])

    @property
    def store(self) -> PostgresHistoryStore:
        if self._store is None:
            from pgshift.db.store import PostgresHistoryStore

            self._store = PostgresHistoryStore(self.schema)
        return self._store

    def read_history(self) -> History:
        """The history, over the command's session; before it has one, over libpq directly.

        Deciding that there is nothing to do must not cost psycopg's import, which costs more
        than the whole read (db/readonly.py; bench/RESULTS.md): so while this Target has not
        opened its psycopg session, the read goes over a short libpq session of its own. A
        no-op `up` (and every read-only command) then costs one connection and no psycopg; an
        `up` that runs opens its runner and lock sessions after that first one has closed
        (three opened in all, never more than two at once). Once the psycopg session exists,
        reads use it: the runner's re-read under the lock must see what that session sees.
        A lost session of a command that writes is opened again rather than read around.
        Without a loadable libpq, psycopg reads.
        """
        session = self._session
        if session is None or (self.purpose in READ_ONLY_PURPOSES and session.closed):
            from pgshift.db.readonly import LibpqSession

            reader = LibpqSession.open(self._url, purpose=self.purpose)
            if reader is not None:
                with reader:
                    return self.store.read(reader)
        return self.store.read(self.session)

    def history_stamp(self, digest: str | None = None) -> str:
        """The stamp of the history's rows now (PostgresHistoryStore.stamp), read over a short
        libpq session, so that neither the history nor psycopg's import is paid for it. With
        ``digest`` (a History.digest): the stamp of that history, "" when it is not the one
        there now (verified_stamp). "" too where libpq does not load: a question whose answer
        is only worth having fast is not worth psycopg's import."""
        from pgshift.db.readonly import LibpqSession

        reader = LibpqSession.open(self._url, purpose=self.purpose)
        if reader is None:
            return ""
        with reader:
            if digest is None:
                return self.store.stamp(reader)
            return self.store.verified_stamp(reader, digest)

    def read_only_session(self) -> AbstractContextManager[Session]:
        """A session for a read-only command's reads: libpq's own when it loads (no psycopg
        import, read_history's reasoning), closed after; else this target's session, kept open.
        """
        from contextlib import contextmanager

        @contextmanager
        def session() -> Iterator[Session]:
            from pgshift.db.readonly import LibpqSession

            reader = LibpqSession.open(self._url, purpose=self.purpose)
            if reader is None:
                yield self.session
                return
            with reader:
                yield reader

        return session()

    def probe(self, *, connect_timeout_s: int = 5) -> AbstractContextManager[Probe]:
        """A bounded probe session (db/probe.py) on a connection of its own, closed after:
        every query time-bounded, driver errors raised as QueryFailed. For `health`."""
        from pgshift.db.probe import opened

        return opened(self._url, purpose=self.purpose, connect_timeout_s=connect_timeout_s)

    def probe_pool(self, *, min_size: int, max_size: int) -> ProbePool:
        """A pool of bounded probe sessions (not yet open): the health endpoint's."""
        from pgshift.db.probe import ProbePool

        return ProbePool(self._url, min_size=min_size, max_size=max_size, purpose=self.purpose)

    def translated(self) -> AbstractContextManager[None]:
        """A driver error raised inside leaves as QueryFailed, this target's password masked:
        what ops/ sees of a failed read on this target's session."""
        from pgshift.db.connect import translated

        return translated(self._url)

    def prepare(self) -> bool:
        """Bring pgshift's own tables to the newest version; only while holding the lock.

        A tenant target's schema is created when missing: a new tenant gets every migration.
        True when this call created the history (every schema file from the first): it is then
        empty, and the run need not read it (every new fleet tenant's first run).
        """
        from pgshift.db.store import schema_files

        if not self._access_checked:
            self.check_history_access()
        done = self.store.upgrade(self.session, tenant_schema=self.tenant_schema)
        return done[:1] == [schema_files()[0][1]]

    def check_history_access(self) -> None:
        """Refuse (exit 3, naming the schema and the missing GRANT) a role that may not keep
        pgshift's history here: asked before a run's backup, and again before the upgrade."""
        from pgshift.db.store import missing_grant
        from pgshift.errors import HistoryAccessDenied

        missing = missing_grant(self.session, self.schema)
        if missing is not None:
            raise HistoryAccessDenied(
                missing.message, schema=self.schema, grant=missing.grant, hint=missing.hint
            )
        self._access_checked = True

    def executor(self) -> PostgresExecutor:
        """The runner's executor: migrations' statements on this target's session."""
        from pgshift.db.execute import PostgresExecutor

        # The lock's session, when the run holds it, keeps a stopped batch's rest from starting.
        lock = self._lock if self._lock is not None and self._lock.conn is not None else None
        return PostgresExecutor(self.session, self.store, gate=lock)

    # -- the runner lock ----------------------------------------------------------------------

    def runner_lock(self, purpose: str = "lock") -> RunnerLock:
        """The migration lock of this target's history (not yet acquired)."""
        from pgshift.db.lock import RunnerLock

        if self._lock is None or self._lock.conn is None:
            self._lock = RunnerLock(
                self._url,
                self.schema,
                self.runner_lock_wait_ms,
                purpose=purpose,
                allow_pooler=self.allow_pooler,
                verify=self.after_lock,
                on_release=self.before_unlock,
                pool=self._pool,
            )
        return self._lock

    # -- lifetime -----------------------------------------------------------------------------

    def _kind(self) -> SessionKind:
        from pgshift.db.pool import SessionKind

        return SessionKind(self._url, self.purpose)

    def close(self, *, reuse: bool = False) -> None:
        """Release the lock and end the session; with ``reuse`` (the command did not fail) and
        a pool, the session goes back to the pool for the next target instead."""
        if self._lock is not None:
            self._lock.release()
        session, self._session = self._session, None
        if session is None:
            return
        if reuse and self._pool is not None and not self._fenced:
            self._pool.give_back(self._kind(), session)
        else:
            session.close()

    def __enter__(self) -> Target:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        from pgshift.config import mask_url

        where = mask_url(self._url) if self._url else "(libpq defaults)"
        tenant = f", tenant_schema={self.tenant_schema!r}" if self.tenant_schema else ""
        return f"Target({where}, schema={self.schema!r}{tenant})"
