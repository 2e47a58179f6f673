"""Rule change-column-type: ALTER COLUMN ... TYPE that rewrites an existing table."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint import tree
from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.registry import Hit, Rule, register
from pgshift.lint.rules._coercion import TIMESTAMPS, no_rewrite
from pgshift.lint.rules._common import type_location

#: Zones with a fixed zero offset, for which pg_get_timezone_offset gives 0 (PostgreSQL 12+).
_UTC_ZONES = frozenset({"utc", "etc/utc", "gmt", "etc/gmt", "zulu", "etc/zulu", "uct"})
_TZ_HELP = (
    "on PostgreSQL 12+ the change from timestamp to timestamptz (or back) needs no rewrite when"
    " the session time zone is UTC: put SET LOCAL TimeZone = 'UTC' before it (values are then"
    " read as UTC, so make sure that is what they mean)"
)


@register
class ChangeColumnType(Rule):
    code = "change-column-type"
    category = "rewrite"
    summary = "changing a column's type rewrites the table and its indexes under an exclusive lock"
    help = (
        "add a new column of the new type, write to both from the application, backfill in"
        " batches, switch reads, then drop the old column in a later migration"
    )
    nodes = ("AlterTableStmt",)
    blocks = True
    rewrites = True
    destructive = True

    def check(self, stmt: Stmt, ctx: LintContext) -> Iterator[Hit]:
        table = tree.table(stmt.node.get("relation"))
        if table is None or ctx.is_new(table):
            return
        for subtype, cmd in tree.alter_commands(stmt.node):
            if subtype != "AT_AlterColumnType":
                continue
            column = tree.column_def(cmd)
            name = str(cmd.get("name"))
            old = ctx.project.column_type(table, name)
            new = tree.column_type(column)
            if old is None or new is None:
                yield Hit(
                    f"changing the type of {table}.{name} to {tree.type_name(column)} takes an"
                    " ACCESS EXCLUSIVE lock and, unless the types are binary compatible"
                    " (varchar(n) to text or to a longer varchar), rewrites the table and"
                    " rebuilds its indexes: reads and writes stop meanwhile, and running code"
                    " may break",
                    at=type_location(column),
                )
                continue
            keeps = _keeps_rows(column, name)
            if keeps and _cheap(old, new, stmt, ctx):
                continue
            how = "" if keeps else " with USING or COLLATE"
            yield Hit(
                f"changing {table}.{name} from {old} to {new}{how} rewrites every row and"
                " rebuilds the table's indexes under an ACCESS EXCLUSIVE lock"
                " (ATColumnChangeRequiresRewrite): reads and writes stop meanwhile, and running"
                " code may break",
                at=type_location(column),
                help=_TZ_HELP
                if {old.name, new.name} == TIMESTAMPS and ctx.pg_major >= 12
                else None,
            )


def _keeps_rows(column: tree.Node, name: str) -> bool:
    """No USING other than the column itself, and no COLLATE (which rebuilds the indexes)."""
    if column.get("collClause"):
        return False
    using = column.get("raw_default")
    if using is None:
        return True
    return tree.strings(using.get("ColumnRef", {}).get("fields")) == [name]


def _cheap(old: tree.ColumnType, new: tree.ColumnType, stmt: Stmt, ctx: LintContext) -> bool:
    if no_rewrite(old, new) is not None:
        return True
    if {old.name, new.name} != TIMESTAMPS or old.array or new.array or ctx.pg_major < 12:
        return False
    if new.typmods:  # a length coercion on top of the cast: leave it to the server
        return False
    return _session_utc(stmt, ctx)


def _session_utc(stmt: Stmt, ctx: LintContext) -> bool:
    """True when the last SET TimeZone before ``stmt`` in the file names a zero-offset zone."""
    utc = False
    for earlier in ctx.statements:
        if earlier.statement.index >= stmt.statement.index:
            break
        node = earlier.node
        if earlier.kind != "VariableSetStmt" or node.get("name") != "timezone":
            continue
        args = node.get("args") or [{}]
        value = args[0].get("A_Const", {}).get("sval", {}).get("sval")
        utc = isinstance(value, str) and value.lower() in _UTC_ZONES
    return utc
