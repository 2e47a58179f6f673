"""Rule prefer-jsonb: a json column where jsonb is meant."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint import tree
from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.registry import Hit, Rule, register
from pgshift.lint.rules._common import column_defs, type_location


@register
class PreferJsonb(Rule):
    code = "prefer-jsonb"
    severity = "warning"
    category = "style"
    summary = "a json column stores text and has no equality operator"
    help = (
        "use jsonb: it is parsed once, indexable with GIN, and DISTINCT, GROUP BY and UNIQUE"
        " work on it"
    )
    nodes = ("CreateStmt", "AlterTableStmt")
    in_rollback = False  # a rollback restores what was there, type included

    def check(self, stmt: Stmt, ctx: LintContext) -> Iterator[Hit]:
        for column in column_defs(stmt.kind, stmt.node):
            if tree.type_name(column) != "json":
                continue
            yield Hit(
                f"column {column.get('colname')} is json: it keeps the raw text, cannot be"
                " compared for equality (DISTINCT, GROUP BY and UNIQUE fail) and cannot be"
                " indexed with GIN",
                at=type_location(column),
            )
