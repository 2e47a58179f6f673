"""Rule prefer-identity: serial columns where an identity column is the standard way."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint import tree
from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.registry import Hit, Rule, register
from pgshift.lint.rules._common import SERIAL_TYPES, column_defs, type_location


@register
class PreferIdentity(Rule):
    code = "prefer-identity"
    severity = "warning"
    category = "style"
    summary = "serial types hide a sequence with its own owner and grants"
    help = "use bigint GENERATED ALWAYS AS IDENTITY (or BY DEFAULT)"
    nodes = ("CreateStmt", "AlterTableStmt")
    in_rollback = False

    def check(self, stmt: Stmt, ctx: LintContext) -> Iterator[Hit]:
        for column in column_defs(stmt.kind, stmt.node):
            name = tree.type_name(column)
            if name in SERIAL_TYPES:
                yield Hit(
                    f"column {column.get('colname')} is {name}: its sequence needs grants of"
                    " its own, is not copied by CREATE TABLE ... LIKE, and can be written past",
                    at=type_location(column),
                )
