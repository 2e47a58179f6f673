"""Rule prefer-text: varchar(n) and char(n) columns."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint import tree
from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.registry import Hit, Rule, register
from pgshift.lint.rules._common import column_defs, type_location


@register
class PreferText(Rule):
    code = "prefer-text"
    severity = "warning"
    category = "style"
    summary = "varchar(n) or char(n): a length limit that is costly to change later"
    help = (
        "use text, with CHECK (length(col) <= n) if the limit matters: a CHECK can be"
        " replaced NOT VALID without locking the table"
    )
    nodes = ("CreateStmt", "AlterTableStmt")
    in_rollback = False  # a rollback restores what was there, type included

    def check(self, stmt: Stmt, ctx: LintContext) -> Iterator[Hit]:
        for column in column_defs(stmt.kind, stmt.node):
            name = tree.type_name(column)
            if not (name == "bpchar" or (name == "varchar" and tree.has_typmods(column))):
                continue
            if tree.type_name(column) == "bpchar":
                why = "is char(n): values are padded with spaces, and the limit is costly to change"
            else:
                why = "is varchar(n): raising the limit is cheap, but lowering it or moving to"
                why += " another type rewrites the table under an ACCESS EXCLUSIVE lock"
            yield Hit(
                f"column {column.get('colname')} {why}",
                at=type_location(column),
            )
