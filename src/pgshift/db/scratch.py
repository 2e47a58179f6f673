"""Throw-away databases on a server: created empty for a proof, dropped after it.

`validate --roundtrip` and `rollback dry-run --simulate` prove things on a scratch database,
never on the target; both create and drop them here, with a fresh name each time so that a
database still being dropped never blocks the next one.
"""

from __future__ import annotations

import contextlib
import uuid

from pgshift.db.connect import connect
from pgshift.errors import DatabaseUnavailable


def create_database(server_url: str, prefix: str) -> tuple[str, str]:
    """Create an empty database (from template0) named ``prefix`` + a random suffix.

    Returns its name and a URL to it (``server_url`` with the database replaced).
    """
    from psycopg import sql
    from psycopg.conninfo import make_conninfo

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with connect(server_url, purpose="scratch admin") as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
    return name, make_conninfo(server_url, dbname=name)


def drop_database(server_url: str, name: str) -> None:
    """Drop ``name`` (forcing its sessions out on 13+); best effort, the name is unique."""
    import psycopg
    from psycopg import sql

    with (
        contextlib.suppress(psycopg.Error, DatabaseUnavailable),
        connect(server_url, purpose="scratch admin") as admin,
    ):
        force = sql.SQL(" WITH (FORCE)") if admin.info.server_version >= 130000 else sql.SQL("")
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}{}").format(sql.Identifier(name), force))
