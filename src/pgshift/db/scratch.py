"""Throw-away databases for proofs: where they are made, and making and dropping them.

`baseline`, `validate --roundtrip`, `validate --trace` and `rollback dry-run --simulate` prove
things on a scratch database, never on the target. Where: on the server named with
``--scratch-url`` when there is one; else on the target's own server when its role may create
a database (CREATEDB or superuser), so that the proof runs on the target's major version; else
(no target, a role that may not, or a server that refuses all the same) on the embedded server.
The choice is made once per command, on first use, so a command that stops before its proof
never starts the embedded server.

Every scratch database is named ``pgshift_scratch_<purpose>_<UTC time>_<random>`` and carries a
comment saying what made it, so a leftover (a machine that died mid-proof) is recognisable and
safe to drop: `leftovers` lists them. A fresh name each time means a database still being
dropped never blocks the next one.
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pgshift.db.connect import open_connection, redact
from pgshift.errors import DatabaseUnavailable

if TYPE_CHECKING:
    import psycopg

#: Every scratch database's name starts so (and nothing else pgshift makes does).
PREFIX = "pgshift_scratch_"

TARGET_SERVER = "the target's server"
EMBEDDED_SERVER = "the embedded server"
SCRATCH_URL_SERVER = "the --scratch-url server"


@dataclass(frozen=True)
class ScratchDatabase:
    """One scratch database: its name, a URL to it (credentials of its server), and where."""

    name: str
    url: str
    where: str  # "the target's server (PostgreSQL 15.4)": no credentials
    major: int
    because: str | None = None  # why not on the target's server, when it was considered

    def describe(self) -> str:
        """``scratch database pgshift_scratch_... on the target's server (PostgreSQL 15.4)``."""
        why = f" ({self.because})" if self.because else ""
        return f"scratch database {self.name} on {self.where}{why}"


class ScratchServer:
    """Where the scratch databases of one command are made, decided on the first `create`.

    ``target_url``: the target's server is used when its role may create a database.
    ``scratch_url``: an explicit server, always used when given. ``embedded``: starts the
    embedded server and returns a URL to it, called only when it is needed, with the reason
    the target's server was not used (None when there is no target).
    """

    def __init__(
        self,
        *,
        target_url: str | None,
        scratch_url: str | None = None,
        embedded: Callable[[str | None], str] | None = None,
    ) -> None:
        self.target_url = target_url
        self.scratch_url = scratch_url
        self._embedded = embedded
        self._server: tuple[str, str] | None = None  # (admin URL, kind of server)
        #: Why the target's server was not used, when it was considered and refused.
        self.fallback_reason: str | None = None

    # -- choosing ------------------------------------------------------------------------------

    def _candidates(self) -> list[tuple[str, str]]:
        if self._server is not None:
            return [self._server]
        if self.scratch_url is not None:
            return [(self.scratch_url, SCRATCH_URL_SERVER)]
        out: list[tuple[str, str]] = []
        if self.target_url is not None:
            refusal = may_create_database(self.target_url)
            if refusal is None:
                out.append((self.target_url, TARGET_SERVER))
            else:
                self.fallback_reason = refusal
        out.append(("", EMBEDDED_SERVER))  # resolved when reached
        return out

    def _resolve(self, url: str, kind: str) -> str:
        if kind != EMBEDDED_SERVER:
            return url
        if self._embedded is None:
            raise DatabaseUnavailable(
                "no server for a scratch database: "
                + (self.fallback_reason or "no database is configured")
                + ", and the embedded server is not available here",
                hint="name one with --scratch-url (a server where a database may be created)",
            )
        return self._embedded(self.fallback_reason)

    # -- making and dropping -------------------------------------------------------------------

    def create(self, purpose: str) -> ScratchDatabase:
        """A new, empty database for ``purpose`` ("baseline", "roundtrip", ...).

        On the target's server, a refusal (the role may not after all, or the new database
        cannot be reached, as through a pooler that knows only the target's database) falls
        back to the embedded server, and the reason is kept in ``fallback_reason``.
        """
        candidates = self._candidates()
        for position, (url, kind) in enumerate(candidates):
            server = self._resolve(url, kind)
            try:
                made = _create(server, kind, purpose)
            except DatabaseUnavailable as exc:
                if kind != TARGET_SERVER or position == len(candidates) - 1:
                    raise
                self.fallback_reason = exc.message
                continue
            self._server = (server, kind)
            if kind == EMBEDDED_SERVER and self.fallback_reason:
                made = replace(made, because=self.fallback_reason)
            return made
        raise AssertionError("unreachable: the last candidate raises")

    def drop(self, database: ScratchDatabase) -> None:
        """Drop ``database`` (forcing its sessions out); best effort, the name is unique."""
        assert self._server is not None, "drop() of a database this server did not create"
        drop_database(self._server[0], database.name)

    @contextlib.contextmanager
    def database(self, purpose: str) -> Any:
        """``with server.database("baseline") as scratch:`` ... dropped whatever happens."""
        made = self.create(purpose)
        try:
            yield made
        finally:
            self.drop(made)


def may_create_database(url: str) -> str | None:
    """None when the role of ``url`` may create a database; else why not, in words.

    CREATEDB or superuser is what `CREATE DATABASE` asks for; a server that cannot even be
    asked is a reason too (the caller falls back, it does not fail).
    """
    import psycopg

    try:
        with open_connection(url, purpose="scratch admin") as conn:
            row = conn.execute(
                "SELECT rolname, rolcreatedb OR rolsuper FROM pg_catalog.pg_roles"
                " WHERE rolname = current_user"
            ).fetchone()
    except (psycopg.Error, DatabaseUnavailable) as exc:
        text = exc.message if isinstance(exc, DatabaseUnavailable) else str(exc).strip()
        return f"the target's server could not be asked ({redact(text, url)})"
    if row is None or not row[1]:
        role = row[0] if row else "?"
        return f"the target's role {role} may not create a database (no CREATEDB)"
    return None


def _name(purpose: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    return f"{PREFIX}{purpose}_{stamp}_{uuid.uuid4().hex[:8]}"


def _where(kind: str, conn: psycopg.Connection[Any]) -> tuple[str, int]:
    row = conn.execute("SELECT current_setting('server_version')").fetchone()
    version = str(row[0]).split(" ", 1)[0] if row else "?"
    return f"{kind} (PostgreSQL {version})", int(conn.info.server_version) // 10000


def _create(server_url: str, kind: str, purpose: str) -> ScratchDatabase:
    """CREATE DATABASE (from template0) on ``server_url``, comment it, and check it opens."""
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import make_conninfo

    name = _name(purpose)
    created = False
    try:
        with open_connection(server_url, purpose="scratch admin") as admin:
            where, major = _where(kind, admin)
            ident = sql.Identifier(name)
            admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(ident))
            created = True
            note = (
                f"pgshift scratch database ({purpose}) made by {socket.gethostname()}"
                f" pid {os.getpid()} at {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC;"
                " dropped when that command ends: safe to drop if left over"
            )
            with contextlib.suppress(psycopg.Error):
                admin.execute(
                    sql.SQL("COMMENT ON DATABASE {} IS {}").format(ident, sql.Literal(note))
                )
        url = make_conninfo(server_url, dbname=name)
        open_connection(
            url, purpose="scratch admin"
        ).close()  # reachable (a pooler may not know it)
    except psycopg.Error as exc:
        if created:
            drop_database(server_url, name)
        raise DatabaseUnavailable(
            f"cannot create a scratch database on {kind}: {redact(str(exc).strip(), server_url)}"
        ) from None
    except BaseException:  # an interrupt between CREATE and here: leave nothing behind
        if created:
            drop_database(server_url, name)
        raise
    return ScratchDatabase(name, url, where, major)


def drop_database(server_url: str, name: str) -> None:
    """Drop ``name`` (forcing its sessions out on 13+); best effort, the name is unique."""
    import psycopg
    from psycopg import sql

    with (
        contextlib.suppress(psycopg.Error, DatabaseUnavailable),
        open_connection(server_url, purpose="scratch admin") as admin,
    ):
        force = sql.SQL(" WITH (FORCE)") if admin.info.server_version >= 130000 else sql.SQL("")
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}{}").format(sql.Identifier(name), force))


def leftovers(server_url: str) -> list[tuple[str, str]]:
    """Scratch databases on a server (name, comment): any not in use by a running command is
    a leftover, safe to drop."""
    with open_connection(server_url, purpose="scratch admin") as admin:
        rows = admin.execute(
            "SELECT d.datname, coalesce(shobj_description(d.oid, 'pg_database'), '')"
            " FROM pg_catalog.pg_database d WHERE d.datname LIKE %s ORDER BY 1",
            (PREFIX.replace("_", "\\_") + "%",),
        ).fetchall()
    return [(str(r[0]), str(r[1])) for r in rows]
