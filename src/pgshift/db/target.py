"""Target: the one owner of everything pgshift does to one database.

Why it exists: a command used to open a connection for every question it asked (history, the
server's version, the backup's snapshot, the backup's log row, the lock, the runner, the
monitor: eight for one `up`). A Target opens its session once, on first use, reads the server's
facts from that session's handshake, and lends the same session to every step of the command;
the runner lock lives on a second, otherwise idle session, which the in-run monitor samples on.
So `status` and a no-op `up` cost one connection, `up` two, and a backup adds only pg_dump's.
A read-only command reads history over a short libpq session of its own (db/readonly.py), so
it never imports psycopg.

Orchestrators (ops/) take a Target, never a URL; the URL stays inside it (child processes such
as pg_dump get it through the backup's password file, never on a command line).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pgshift.db.connect import connect, redact

if TYPE_CHECKING:
    import psycopg

    from pgshift.config import Settings
    from pgshift.db.execute import PostgresExecutor
    from pgshift.db.lock import RunnerLock
    from pgshift.db.store import PostgresHistoryStore
    from pgshift.history import History


@dataclass(frozen=True)
class ServerFacts:
    """What the server said about itself when the session connected (no query needed)."""

    version_num: int  # e.g. 150004
    database: str
    backend_pid: int  # as announced; a pooler announces its own

    @property
    def major(self) -> int:
        return self.version_num // 10000


#: Purposes of commands that only read: their history read may skip psycopg (read_history).
READ_ONLY_PURPOSES = frozenset({"status", "health", "validate", "check"})


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
    ) -> None:
        self._url = url
        self._settings = settings
        self.schema = schema
        self.purpose = purpose
        self.runner_lock_wait_ms = runner_lock_wait_ms
        self.allow_pooler = allow_pooler
        self._session: psycopg.Connection[tuple[Any, ...]] | None = None
        self._store: PostgresHistoryStore | None = None
        self._lock: RunnerLock | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, url: str | None, *, purpose: str = "runner"
    ) -> Target:
        return cls(
            url,
            schema=settings.schema,
            purpose=purpose,
            runner_lock_wait_ms=settings.runner_lock_wait_ms,
            allow_pooler=settings.allow_pooler,
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

    def redact(self, text: str) -> str:
        """``text`` with this target's password (and URL) masked."""
        return redact(text, self._url)

    # -- the session --------------------------------------------------------------------------

    @property
    def session(self) -> psycopg.Connection[tuple[Any, ...]]:
        """The command's connection (autocommit), opened on first use and reused after."""
        if self._session is None or self._session.closed:
            self._session = connect(self._url, purpose=self.purpose)
        return self._session

    @property
    def facts(self) -> ServerFacts:
        info = self.session.info
        return ServerFacts(int(info.server_version), str(info.dbname), int(info.backend_pid))

    @property
    def store(self) -> PostgresHistoryStore:
        if self._store is None:
            from pgshift.db.store import PostgresHistoryStore

            self._store = PostgresHistoryStore(self.schema)
        return self._store

    def read_history(self) -> History:
        """The history, over the command's session; for a read-only command, over libpq directly.

        A read-only command (`status`, `health`, `validate`) never needs psycopg, and importing
        it costs more than the whole read (db/readonly.py). A command that may go on to write
        (`up`) reads on its psycopg session instead, so that it costs one connection when it
        has nothing to do and two when it runs (a libpq read first would be a third). Without
        a loadable libpq, psycopg reads.
        """
        if self.purpose in READ_ONLY_PURPOSES and (self._session is None or self._session.closed):
            from pgshift.db.readonly import LibpqSession

            reader = LibpqSession.open(self._url, purpose=self.purpose)
            if reader is not None:
                with reader:
                    return self.store.read(reader)
        return self.store.read(self.session)

    def prepare(self) -> None:
        """Bring pgshift's own tables to the newest version; only while holding the lock."""
        self.store.upgrade(self.session)

    def executor(self) -> PostgresExecutor:
        """The runner's executor: migrations' statements on this target's session."""
        from pgshift.db.execute import PostgresExecutor

        return PostgresExecutor(self.session, self.store)

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
            )
        return self._lock

    @property
    def lock_session(self) -> psycopg.Connection[tuple[Any, ...]] | None:
        """The idle session that holds the runner lock, while it is held."""
        return self._lock.conn if self._lock is not None else None

    # -- lifetime -----------------------------------------------------------------------------

    def close(self) -> None:
        if self._lock is not None:
            self._lock.release()
        if self._session is not None:
            self._session.close()
            self._session = None

    def __enter__(self) -> Target:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        from pgshift.config import mask_url

        where = mask_url(self._url) if self._url else "(libpq defaults)"
        return f"Target({where}, schema={self.schema!r})"
