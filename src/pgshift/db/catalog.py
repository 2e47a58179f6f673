"""Read-only questions to the system catalogs that the runner and health checks ask."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg


@dataclass(frozen=True)
class IndexState:
    schema: str
    name: str
    valid: bool

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


def find_index(
    conn: psycopg.Connection[tuple[Any, ...]], schema: str | None, name: str
) -> IndexState | None:
    """The index ``name`` as PostgreSQL would resolve it (search_path when no schema)."""
    row = conn.execute(
        """
        SELECT n.nspname, c.relname, i.indisvalid
        FROM pg_class c
        JOIN pg_index i ON i.indexrelid = c.oid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relname = %(name)s
          AND CASE WHEN %(schema)s::text IS NULL
                   THEN n.nspname = ANY (current_schemas(false))
                   ELSE n.nspname = %(schema)s::text END
        ORDER BY array_position(current_schemas(false), n.nspname::text) NULLS LAST
        LIMIT 1
        """,
        {"schema": schema, "name": name},
    ).fetchone()
    if row is None:
        return None
    return IndexState(row[0], row[1], bool(row[2]))


def invalid_indexes(conn: psycopg.Connection[tuple[Any, ...]]) -> list[IndexState]:
    """INVALID indexes left by failed concurrent builds (excluding ones still being built)."""
    rows = conn.execute(
        """
        SELECT n.nspname, c.relname
        FROM pg_index i
        JOIN pg_class c ON c.oid = i.indexrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE NOT i.indisvalid
          AND NOT EXISTS (SELECT 1 FROM pg_stat_progress_create_index p WHERE p.index_relid = c.oid)
        ORDER BY 1, 2
        """
    ).fetchall()
    return [IndexState(r[0], r[1], False) for r in rows]


def server_version(conn: psycopg.Connection[tuple[Any, ...]]) -> int:
    return int(conn.info.server_version)
