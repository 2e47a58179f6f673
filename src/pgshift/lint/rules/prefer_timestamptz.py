"""Rule prefer-timestamptz: timestamp without time zone."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint import tree
from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.registry import Hit, Rule, register
from pgshift.lint.rules._common import column_defs, type_location


@register
class PreferTimestamptz(Rule):
    code = "prefer-timestamptz"
    severity = "warning"
    category = "style"
    summary = "timestamp without time zone loses the zone of every value"
    help = "use timestamptz: it stores an instant, shown in each session's time zone"
    nodes = ("CreateStmt", "AlterTableStmt")
    in_rollback = False  # a rollback restores what was there, type included

    def check(self, stmt: Stmt, ctx: LintContext) -> Iterator[Hit]:
        for column in column_defs(stmt.kind, stmt.node):
            if tree.type_name(column) != "timestamp":
                continue
            yield Hit(
                f"column {column.get('colname')} is timestamp without time zone: a value means a"
                " different instant to sessions in other zones, and DST makes some ambiguous",
                at=type_location(column),
            )
