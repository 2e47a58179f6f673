"""Other migration tools' history tables, read as they are: the database half of `pgshift import`.

Only reads; what the rows mean (dirty, failed, undone) is decided by the pure importers. The
table is looked up through the session's search_path, where each tool creates it by default.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pgshift.source.importers import ImportRefused

if TYPE_CHECKING:
    import psycopg

#: The columns each tool's rows are read with, in the order its `interpret` expects.
_COLUMNS: dict[str, tuple[str, ...]] = {
    "diesel": ("version",),
    "golang-migrate": ("version", "dirty"),
    "dbmate": ("version",),
    "flyway": ("installed_rank", "version", "type", "success", "script"),
    # popx: `version_self` (newer popx) versions popx's own table, not the migrations.
    "popx": ("version",),
}
_ORDER = {"flyway": "installed_rank", "golang-migrate": "version"}


def _columns(conn: psycopg.Connection[tuple[Any, ...]], table: str) -> set[str] | None:
    """The table's column names, or None when the search_path has no such table."""
    row = conn.execute("SELECT to_regclass(%s)::oid", (table,)).fetchone()
    if row is None or row[0] is None:
        return None
    names = conn.execute(
        "SELECT attname FROM pg_catalog.pg_attribute WHERE attrelid = %s AND attnum > 0"
        " AND NOT attisdropped",
        (row[0],),
    )
    return {str(r[0]) for r in names}


def read_tool_history(
    conn: psycopg.Connection[tuple[Any, ...]], tool: str, table: str
) -> list[tuple[Any, ...]] | None:
    """The rows of ``tool``'s history ``table``; None when the database has no such table.

    Refuses (ImportRefused) a table that is not that tool's, such as dbmate's
    `schema_migrations` read as golang-migrate's (no `dirty` column).
    """
    from psycopg import sql

    present = _columns(conn, table)
    if present is None:
        return None
    wanted = _COLUMNS[tool]
    missing = [c for c in wanted if c not in present]
    if missing:
        raise ImportRefused(
            f"table {table} has no column {', '.join(missing)}: it is not {tool}'s history",
            hint="name the tool that made it with --from",
        )
    order = sql.Identifier(_ORDER.get(tool, "version"))
    query = sql.SQL("SELECT {} FROM {} ORDER BY {}").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in wanted), sql.Identifier(table), order
    )
    return list(conn.execute(query).fetchall())
