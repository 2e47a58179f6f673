"""Connections to the target database: application_name, redacted errors, libpq defaults."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from pgshift.errors import DatabaseUnavailable, QueryFailed

if TYPE_CHECKING:
    import psycopg

    from pgshift.history import Session

APPLICATION_NAME = "pgshift"
#: TCP keepalives of the lock session: first probe after 30 s idle, then every 10 s, 3 misses.
KEEPALIVE_IDLE_S = 30
KEEPALIVE_INTERVAL_S = 10
KEEPALIVE_COUNT = 3


#: A URL's password field: ``scheme://user:PASSWORD@``; the user name stays readable.
_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@]*:)([^\s@/]*)(@)")
#: ``password=VALUE`` of a key=value connection string (quoted with '...' or a bare word), and
#: of a URL's query string.
#: libpq's messages that quote a piece of the connection string it could not use (fe-connect.c),
#: which may be the password: only these quotes are searched for it, never a quoted user name.
_LIBPQ_QUOTED = re.compile(
    r'((?:invalid percent-encoded token|in percent-encoded value|missing "=" after'
    r'|unexpected spaces found in|invalid URI query parameter|invalid connection option):? ")'
    r'([^"]*)(")'
)
_KEY_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&'\"]+)", re.IGNORECASE)


def redact(text: str, url: str | None) -> str:
    """Hide the password wherever a text (an error, a log line) can carry it, and only there.

    Where it can appear: the URL itself, any URL's password field, ``password=`` in a
    key=value string or a query string, and libpq's messages that quote a bad part of a URL
    (``invalid percent-encoded token: "..."``). Replacing every occurrence of the password's
    characters instead would mangle the text and give the password away: with password
    ``on``, "c***necti***" reads as "on", and a password equal to the user name would hide
    the user.
    """
    from pgshift.config import mask_url

    if url:
        text = text.replace(url, mask_url(url))
    text = _URL_PASSWORD.sub(lambda m: m.group(1) + "***" + m.group(3), text)
    text = _KEY_PASSWORD.sub(lambda m: m.group(1) + "***", text)
    forms = _password_forms(url)
    if forms:
        text = _LIBPQ_QUOTED.sub(
            lambda m: m.group(1) + ("***" if any(f in m.group(2) for f in forms) else m.group(2))
            + m.group(3),
            text,
        )  # fmt: skip
    return text


def _password_forms(url: str | None) -> set[str]:
    """The password as libpq may quote it: as written in the URL, and decoded."""
    if not url:
        return set()
    forms: set[str] = set()
    if "://" in url:
        userinfo = urlsplit(url).netloc.rpartition("@")[0]
        if ":" in userinfo:
            written = userinfo.split(":", 1)[1]
            forms |= {written, unquote(written)}
    secret = _password_of(url)
    if secret:
        forms.add(secret)
    return {form for form in forms if form}


@contextmanager
def translated(url: str | None) -> Iterator[None]:
    """Turn a driver error raised inside into QueryFailed, its text redacted of ``url``: what
    leaves db/ is a pgshift error, never the driver's exception."""
    import psycopg

    try:
        yield
    except psycopg.Error as exc:
        text = redact(str(exc).strip(), url)
        raise QueryFailed(text or type(exc).__name__) from None


def server_version(url: str, *, connect_timeout_s: int) -> str | None:
    """The server's full version as its handshake says (e.g. "18.1"); None when it does not
    answer (the embedded server's manager asks this of a server it found running)."""
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=connect_timeout_s) as conn:
            return conn.info.parameter_status("server_version")
    except psycopg.Error:
        return None


def child_conninfo(url: str | None, *, application_name: str) -> tuple[str | None, str | None]:
    """(conninfo without the password, the password) for a libpq child process (pg_dump,
    psql) connecting to ``url``; (None, None) for libpq's defaults. The process helper puts
    the password in a 0600 file (process.child_connection), never on a command line.
    """
    import psycopg.conninfo

    from pgshift.config import mask_url
    from pgshift.errors import BackupError, UsageError

    if not url:
        return None, None
    try:
        params = dict(psycopg.conninfo.conninfo_to_dict(url))
    except psycopg.ProgrammingError:
        raise UsageError(f"the database URL {mask_url(url)} is not valid") from None
    password = params.pop("password", None)
    if params.pop("sslpassword", None):
        raise BackupError(
            "backups cannot pass an sslpassword to pg_dump without exposing it",
            hint="use an unencrypted client key file with 0600 permissions for backups",
        )
    params.setdefault("application_name", application_name)
    conninfo = psycopg.conninfo.make_conninfo("", **{k: v for k, v in params.items() if v})
    return conninfo, None if password is None else str(password)


def pg_connection(session: Session) -> psycopg.Connection[tuple[object, ...]]:
    """``session`` as the psycopg connection it is: the history protocol's sessions are opaque
    above db/, and only db/ looks inside them."""
    import psycopg

    if not isinstance(session, psycopg.Connection):
        raise TypeError(f"expected a PostgreSQL session, not {type(session).__name__}")
    return session


def _password_of(url: str) -> str | None:
    import psycopg.conninfo

    try:
        params = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return None
    value = params.get("password")
    return str(value) if value else None


def open_connection(
    url: str | None,
    *,
    purpose: str = "runner",
    autocommit: bool = True,
    connect_timeout_s: int = 10,
    keepalive: bool = False,
    search_path: str | None = None,
) -> psycopg.Connection[tuple[object, ...]]:
    """Open a connection named after its purpose, so `pg_stat_activity` tells who is who.

    An empty ``url`` means "libpq's PG* environment variables". ``keepalive`` turns on TCP
    keepalives (for the idle session that holds the runner lock: a dead network path is then
    noticed within about a minute instead of the kernel's two hours, by both ends).
    ``search_path`` (a tenant schema of a fleet) becomes the session's search_path, set in the
    same round trip as the other session settings.
    """
    import psycopg

    try:
        conninfo = url or ""
        if keepalive:
            conninfo = psycopg.conninfo.make_conninfo(
                conninfo,
                keepalives=1,
                keepalives_idle=KEEPALIVE_IDLE_S,
                keepalives_interval=KEEPALIVE_INTERVAL_S,
                keepalives_count=KEEPALIVE_COUNT,
            )
        conn = psycopg.connect(
            conninfo,
            autocommit=autocommit,
            application_name=f"{APPLICATION_NAME} {purpose}",
            connect_timeout=connect_timeout_s,
        )
        apply_session_settings(conn, search_path)
        if not autocommit:
            conn.commit()
        return conn
    except psycopg.Error as exc:
        raise DatabaseUnavailable(
            "cannot connect to the database: " + redact(str(exc).strip(), url)
        ) from None


def apply_session_settings(
    conn: psycopg.Connection[tuple[object, ...]], search_path: str | None
) -> None:
    """The settings pgshift gives every session it opens, in one round trip: those a new
    session gets, and those a session handed on to the next target gets again after its reset
    (db/pool.py; DISCARD ALL sets them back to the server's defaults).

    ``search_path`` (a tenant schema of a fleet) becomes the session's search_path.
    """
    from psycopg import sql

    settings: list[sql.Composable] = []
    if conn.info.server_version >= 140000:
        # A killed runner must not leave its statement running (and its locks held) until
        # the statement ends by itself: the server checks the client is still there.
        settings.append(sql.SQL("set_config('client_connection_check_interval', '1s', false)"))
    if search_path is not None:
        # set_config takes the path as text: psycopg quotes the identifier inside it.
        path = sql.Identifier(search_path).as_string(conn)
        settings.append(sql.SQL("set_config('search_path', {}, false)").format(sql.Literal(path)))
    if settings:
        conn.execute(sql.SQL("SELECT ") + sql.SQL(", ").join(settings))
