"""Helpers shared by several rules: type names, volatility of defaults, lock wording."""

from __future__ import annotations

from pgshift.lint import tree
from pgshift.lint.tree import Node

SERIAL_TYPES = frozenset({"serial", "serial4", "bigserial", "serial8", "smallserial", "serial2"})
SMALL_INT_TYPES = frozenset({"int2", "int4", "smallint", "integer", "int", "serial", "serial4",
                             "smallserial", "serial2"})  # fmt: skip

#: Functions PostgreSQL marks VOLATILE that people use as column defaults.
VOLATILE_FUNCTIONS = frozenset(
    {
        "random", "random_normal", "gen_random_uuid", "uuidv4", "uuidv7", "uuid_generate_v1",
        "uuid_generate_v1mc", "uuid_generate_v4", "clock_timestamp", "timeofday", "nextval",
        "setval", "txid_current", "pg_current_xact_id", "gen_random_bytes", "gen_salt",
    }
)  # fmt: skip

#: Functions known to be STABLE or IMMUTABLE: a default calling them is evaluated once when
#: the column is added (PostgreSQL >= 11 stores it in the catalog), no rewrite.
NON_VOLATILE_FUNCTIONS = frozenset(
    {
        "now", "transaction_timestamp", "statement_timestamp", "current_setting", "lower",
        "upper", "trim", "btrim", "concat", "concat_ws", "coalesce", "nullif", "greatest",
        "least", "length", "abs", "round", "floor", "ceil", "to_json", "to_jsonb",
        "json_build_object", "jsonb_build_object", "json_build_array", "jsonb_build_array",
        "array_fill", "make_date", "make_interval", "make_timestamp", "make_timestamptz",
        "to_timestamp", "to_date", "date_trunc", "timezone", "md5", "int4range", "int8range",
        "tstzrange", "daterange", "numrange", "current_date", "localtimestamp",
    }
)  # fmt: skip


def volatile_call(expr: object) -> tuple[str, int | None] | None:
    """(function name, location) of a call in ``expr`` that may be volatile, else None.

    An unknown function (a user's own) may be volatile, and only the catalog knows: it is
    reported, and an author who knows better silences the rule on that statement.
    """
    for kind, node in tree.walk(expr):
        if kind != "FuncCall":
            continue
        name = tree.strings(node.get("funcname"))
        short = name[-1].lower() if name else ""
        if short in NON_VOLATILE_FUNCTIONS and (len(name) == 1 or name[0] == "pg_catalog"):
            continue
        return short, tree.location(node)
    return None


def column_where(cmd: Node) -> int | None:
    """The location of an ALTER TABLE command's column definition, for the caret."""
    return tree.location(tree.column_def(cmd))


def type_location(column: Node) -> int | None:
    return tree.location(column.get("typeName", {}), tree.location(column))


EXCLUSIVE = "an ACCESS EXCLUSIVE lock"


def column_defs(kind: str, stmt: Node) -> list[Node]:
    """ColumnDefs a statement declares: CREATE TABLE columns, ADD COLUMN, ALTER COLUMN TYPE."""
    out: list[Node] = []
    if kind == "CreateStmt":
        for element in stmt.get("tableElts") or ():
            column = element.get("ColumnDef")
            if isinstance(column, dict):
                out.append(column)
    elif kind == "AlterTableStmt":
        for subtype, cmd in tree.alter_commands(stmt):
            if subtype in ("AT_AddColumn", "AT_AlterColumnType"):
                column = dict(tree.column_def(cmd))
                column.setdefault("colname", cmd.get("name"))
                out.append(column)
    return out
