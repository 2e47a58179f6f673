"""Connections to the target database: application_name, redacted errors, libpq defaults."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pgshift.errors import DatabaseUnavailable

if TYPE_CHECKING:
    import psycopg

APPLICATION_NAME = "pgshift"
#: TCP keepalives of the lock session: first probe after 30 s idle, then every 10 s, 3 misses.
KEEPALIVE_IDLE_S = 30
KEEPALIVE_INTERVAL_S = 10
KEEPALIVE_COUNT = 3


def redact(text: str, url: str | None) -> str:
    """Remove the URL's password from any text that might echo it (errors, logs)."""
    from pgshift.config import mask_url

    if not url:
        return text
    secret = _password_of(url)
    if secret:
        text = text.replace(secret, "***")
    return text.replace(url, mask_url(url))


def _password_of(url: str) -> str | None:
    import psycopg.conninfo

    try:
        params = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return None
    value = params.get("password")
    return str(value) if value else None


def connect(
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
    from psycopg import sql

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
        settings: list[sql.Composable] = []
        if conn.info.server_version >= 140000:
            # A killed runner must not leave its statement running (and its locks held) until
            # the statement ends by itself: the server checks the client is still there.
            settings.append(sql.SQL("set_config('client_connection_check_interval', '1s', false)"))
        if search_path is not None:
            # set_config takes the path as text: psycopg quotes the identifier inside it.
            path = sql.Identifier(search_path).as_string(conn)
            settings.append(
                sql.SQL("set_config('search_path', {}, false)").format(sql.Literal(path))
            )
        if settings:
            conn.execute(sql.SQL("SELECT ") + sql.SQL(", ").join(settings))
            if not autocommit:
                conn.commit()
        return conn
    except psycopg.Error as exc:
        raise DatabaseUnavailable(
            "cannot connect to the database: " + redact(str(exc).strip(), url)
        ) from None
