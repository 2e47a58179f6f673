"""Other migration tools' bookkeeping tables: read by definition from the target, made again on
a scratch database.

A proof builds the schema from the migrations on an empty database, where the old tool's own
table (which the tool, not a migration, created) does not exist; a migration that refers to it
(a trigger on it, a GRANT on it) would fail there. Such a table is created on the scratch
database first with the definition the target's catalog gives: its columns (type, NOT NULL,
default, identity, the sequence behind a serial), its primary key, unique and check constraints
and its other indexes. Not its triggers, policies or grants: those come from the migrations.
It never counts as a difference (ops/baseline.py leaves such tables out of the comparison).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

#: Other migration tools' bookkeeping tables (bare names, any schema): never part of the schema
#: a proof compares. Diesel, golang-migrate and dbmate, ory/popx, Flyway,
#: goose, Alembic, Django, Knex, Prisma, Entity Framework, Liquibase, sqlx, refinery, SeaORM,
#: gorp/sql-migrate.
BOOKKEEPING_TABLES = (
    "__diesel_schema_migrations",
    "schema_migrations",
    "schema_migration",
    "flyway_schema_history",
    "goose_db_version",
    "alembic_version",
    "django_migrations",
    "knex_migrations",
    "knex_migrations_lock",
    "_prisma_migrations",
    "__EFMigrationsHistory",
    "databasechangelog",
    "databasechangeloglock",
    "_sqlx_migrations",
    "refinery_schema_history",
    "seaql_migrations",
    "gorp_migrations",
)


@dataclass(frozen=True)
class ToolColumn:
    name: str
    type: str  # format_type
    not_null: bool
    default: str | None  # pg_get_expr of the default, as the server prints it
    identity: str  # '', 'a' (ALWAYS) or 'd' (BY DEFAULT)
    sequence: tuple[str, str] | None  # (schema, name) of a serial's own sequence


@dataclass(frozen=True)
class ToolTable:
    """One bookkeeping table as the target defines it."""

    schema: str
    name: str
    columns: tuple[ToolColumn, ...]
    constraints: tuple[tuple[str, str], ...]  # (name, pg_get_constraintdef): p, u, c
    indexes: tuple[str, ...]  # pg_get_indexdef of indexes no constraint owns


_TABLES = """
SELECT c.oid, n.nspname, c.relname
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND c.relname = ANY (%(names)s) AND n.nspname <> ALL (%(skip)s)
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
ORDER BY n.nspname, c.relname
"""

_COLUMNS = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       pg_get_expr(ad.adbin, ad.adrelid), a.attidentity::text,
       (SELECT ARRAY[sn.nspname::text, s.relname::text]
        FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_class s ON s.oid = d.objid
        JOIN pg_catalog.pg_namespace sn ON sn.oid = s.relnamespace
        WHERE d.classid = 'pg_class'::regclass AND d.refobjid = a.attrelid
          AND d.refobjsubid = a.attnum AND s.relkind = 'S' AND d.deptype = 'a' LIMIT 1)
FROM pg_catalog.pg_attribute a
LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
WHERE a.attrelid = %(oid)s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""

_CONSTRAINTS = """
SELECT conname, pg_get_constraintdef(oid) FROM pg_catalog.pg_constraint
WHERE conrelid = %(oid)s AND contype IN ('p', 'u', 'c') ORDER BY conname
"""

_INDEXES = """
SELECT pg_get_indexdef(i.indexrelid) FROM pg_catalog.pg_index i
WHERE i.indrelid = %(oid)s
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.conindid = i.indexrelid
                  AND k.conrelid = i.indrelid)
ORDER BY 1
"""


def read_tool_tables(
    conn: psycopg.Connection[Any], names: Collection[str], skip_schemas: Sequence[str] = ()
) -> list[ToolTable]:
    """The tables named ``names`` (bare names, any schema but ``skip_schemas``) of ``conn``."""
    out: list[ToolTable] = []
    rows = conn.execute(_TABLES, {"names": list(names), "skip": list(skip_schemas)}).fetchall()
    for oid, schema, name in rows:
        params = {"oid": oid}
        columns = tuple(
            ToolColumn(
                str(r[0]),
                str(r[1]),
                bool(r[2]),
                None if r[3] is None else str(r[3]),
                str(r[4] or ""),
                (str(r[5][0]), str(r[5][1])) if r[5] else None,
            )
            for r in conn.execute(_COLUMNS, params).fetchall()
        )
        constraints = tuple(
            (str(r[0]), str(r[1])) for r in conn.execute(_CONSTRAINTS, params).fetchall()
        )
        indexes = tuple(str(r[0]) for r in conn.execute(_INDEXES, params).fetchall())
        out.append(ToolTable(str(schema), str(name), columns, constraints, indexes))
    return out


def create_tool_tables(conn: psycopg.Connection[Any], tables: Sequence[ToolTable]) -> None:
    """Create ``tables`` on ``conn``'s (scratch) database, in one transaction.

    Only in schemas the database already has: a schema the migrations create cannot be made
    before them. Identifiers are quoted by psycopg; types, defaults and constraint and index
    definitions are the target server's own printed SQL, which PostgreSQL reads back as it
    printed it.
    """
    from psycopg import sql

    if not tables:
        return
    rows = conn.execute("SELECT nspname FROM pg_catalog.pg_namespace").fetchall()
    schemas = {str(r[0]) for r in rows}
    with conn.transaction():
        for table in (t for t in tables if t.schema in schemas):
            qualified = sql.Identifier(table.schema, table.name)
            for column in table.columns:
                if column.sequence is not None:
                    conn.execute(
                        sql.SQL("CREATE SEQUENCE IF NOT EXISTS {}").format(
                            sql.Identifier(*column.sequence)
                        )
                    )
            conn.execute(
                sql.SQL("CREATE TABLE {} ({})").format(
                    qualified, sql.SQL(", ").join(_column(c) for c in table.columns)
                )
            )
            for column in table.columns:
                if column.sequence is not None:
                    conn.execute(
                        sql.SQL("ALTER SEQUENCE {} OWNED BY {}").format(
                            sql.Identifier(*column.sequence),
                            sql.Identifier(table.schema, table.name, column.name),
                        )
                    )
            for name, definition in table.constraints:
                conn.execute(
                    sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                        qualified, sql.Identifier(name), sql.SQL(definition)
                    )
                )
            for definition in table.indexes:
                conn.execute(sql.SQL(definition))


def _column(column: ToolColumn) -> Any:
    from psycopg import sql

    parts: list[sql.Composable] = [sql.Identifier(column.name), sql.SQL(column.type)]
    if column.identity:
        kind = "ALWAYS" if column.identity == "a" else "BY DEFAULT"
        parts.append(sql.SQL(f"GENERATED {kind} AS IDENTITY"))
    elif column.default is not None:
        parts.append(sql.SQL("DEFAULT ") + sql.SQL(column.default))
    if column.not_null:
        parts.append(sql.SQL("NOT NULL"))
    return sql.SQL(" ").join(parts)
