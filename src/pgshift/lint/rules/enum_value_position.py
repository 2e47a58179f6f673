"""Rule enum-value-position: a new enum value goes last unless told otherwise."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint import tree
from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.registry import Hit, Rule, register


@register
class EnumValuePosition(Rule):
    code = "enum-value-position"
    severity = "warning"
    category = "semantics"
    summary = "ALTER TYPE ... ADD VALUE without BEFORE/AFTER appends the value at the end"
    help = (
        "say where it goes: ADD VALUE 'x' BEFORE 'y' (or AFTER); enum values sort in declaration"
        " order, so ORDER BY and < > comparisons depend on it"
    )
    nodes = ("AlterEnumStmt",)

    def check(self, stmt: Stmt, ctx: LintContext) -> Iterator[Hit]:
        node = stmt.node
        if not node.get("newVal") or node.get("newValNeighbor") or node.get("oldVal"):
            return
        name = ".".join(tree.strings(node.get("typeName")))
        yield Hit(
            f"value {node['newVal']!r} is appended after the last value of {name}: it sorts"
            " after all the others, which ORDER BY and comparisons on the column will show"
        )
