"""Rule add-column-rewrite: ADD COLUMN whose value must be written into every existing row."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint import tree
from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.registry import Hit, Rule, register
from pgshift.lint.rules._common import SERIAL_TYPES, column_where, volatile_call


@register
class AddColumnRewrite(Rule):
    code = "add-column-rewrite"
    category = "rewrite"
    summary = "ADD COLUMN with a volatile default, serial, identity or stored generated value"
    help = (
        "add the column without the default (or with a constant one), set the default for new"
        " rows with ALTER COLUMN ... SET DEFAULT, and backfill existing rows in batches"
    )
    nodes = ("AlterTableStmt",)
    blocks = True
    rewrites = True

    def check(self, stmt: Stmt, ctx: LintContext) -> Iterator[Hit]:
        table = tree.table(stmt.node.get("relation"))
        if ctx.is_new(table):
            return
        for subtype, cmd in tree.alter_commands(stmt.node):
            if subtype != "AT_AddColumn":
                continue
            column = tree.column_def(cmd)
            reason = self._reason(column, ctx.pg_major)
            if reason is None:
                continue
            why, at = reason
            yield Hit(
                f"column {column.get('colname')} is added with {why}: PostgreSQL rewrites every"
                f" row of {table} while holding an ACCESS EXCLUSIVE lock, so reads and writes"
                " stop for as long as the rewrite takes",
                at=at if at is not None else column_where(cmd),
            )

    @staticmethod
    def _reason(column: tree.Node, pg_major: int) -> tuple[str, int | None] | None:
        if tree.type_name(column) in SERIAL_TYPES:
            return f"type {tree.type_name(column)} (a nextval() default)", None
        for con in tree.constraints(column):
            contype = con.get("contype")
            if contype == "CONSTR_IDENTITY":
                return "GENERATED ... AS IDENTITY (a new value per row)", tree.location(con)
            if contype == "CONSTR_GENERATED" and con.get("generated_kind", "s") == "s":
                return "a STORED generated expression", tree.location(con)
            if contype != "CONSTR_DEFAULT":
                continue
            expr = con.get("raw_expr") or {}
            call = volatile_call(expr)
            if call is not None:
                name, at = call
                return f"a default calling {name}(), which may be volatile", at
            if pg_major < 11:
                return (
                    f"a DEFAULT on PostgreSQL {pg_major} (before 11 every default rewrites)",
                    tree.location(con),
                )
        return None
