"""Rule enum-add-value-in-transaction: ALTER TYPE ... ADD VALUE in a transaction before 12."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint import tree
from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.registry import Hit, Rule, register

_FIRST_IN_TRANSACTION = 12


@register
class EnumAddValueInTransaction(Rule):
    code = "enum-add-value-in-transaction"
    category = "failure"
    summary = "before PostgreSQL 12, ALTER TYPE ... ADD VALUE cannot run in a transaction block"
    help = (
        "put it in a file of its own with -- @transaction: false (PostgreSQL 12+ allows it in"
        " a transaction, but the new value cannot be used before the transaction commits)"
    )
    nodes = ("AlterEnumStmt",)

    def check(self, stmt: Stmt, ctx: LintContext) -> Iterator[Hit]:
        node = stmt.node
        if ctx.pg_major >= _FIRST_IN_TRANSACTION or not ctx.transactional:
            return
        if not node.get("newVal") or node.get("oldVal"):
            return
        yield Hit(
            f"ALTER TYPE {tree.qualified(node.get('typeName'))} ADD VALUE fails on PostgreSQL"
            f" {ctx.pg_major} with 'cannot run inside a transaction block', and pgshift runs"
            " this file in one"
        )
