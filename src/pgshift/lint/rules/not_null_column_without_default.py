"""Rule not-null-column-without-default: ADD COLUMN ... NOT NULL with nothing to fill it."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint import tree
from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.registry import Hit, Rule, register
from pgshift.lint.rules._common import SERIAL_TYPES, column_where

_FILLED = frozenset({"CONSTR_DEFAULT", "CONSTR_IDENTITY", "CONSTR_GENERATED"})


@register
class NotNullColumnWithoutDefault(Rule):
    code = "not-null-column-without-default"
    category = "failure"
    summary = "ADD COLUMN ... NOT NULL without a DEFAULT fails on a table that has rows"
    help = (
        "add the column nullable, backfill it in batches, add CHECK (col IS NOT NULL) NOT VALID,"
        " VALIDATE it, then SET NOT NULL; or give it a constant DEFAULT"
    )
    nodes = ("AlterTableStmt",)

    def check(self, stmt: Stmt, ctx: LintContext) -> Iterator[Hit]:
        table = tree.table(stmt.node.get("relation"))
        if ctx.is_new(table):
            return
        for subtype, cmd in tree.alter_commands(stmt.node):
            if subtype != "AT_AddColumn":
                continue
            column = tree.column_def(cmd)
            kinds = {c.get("contype") for c in tree.constraints(column)}
            if "CONSTR_NOTNULL" not in kinds and "CONSTR_PRIMARY" not in kinds:
                continue
            if kinds & _FILLED or tree.type_name(column) in SERIAL_TYPES:
                continue
            yield Hit(
                f"column {column.get('colname')} is added NOT NULL without a DEFAULT: on a"
                f" table with rows ({table}) the statement fails, and every existing row would"
                " need a value",
                at=column_where(cmd),
            )
