"""Rule rename-enum-value: ALTER TYPE ... RENAME VALUE breaks code that writes the old label."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint import tree
from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.registry import Hit, Rule, register


@register
class RenameEnumValue(Rule):
    code = "rename-enum-value"
    category = "compatibility"
    summary = "renaming an enum value breaks every running query that uses the old label"
    help = (
        "add the new value (ADD VALUE), deploy code that accepts both, move the rows with"
        " batched UPDATEs, then stop writing the old one; an enum value cannot be dropped"
    )
    nodes = ("AlterEnumStmt",)

    def check(self, stmt: Stmt, ctx: LintContext) -> Iterator[Hit]:
        node = stmt.node
        if not node.get("oldVal"):
            return
        name = tree.qualified(node.get("typeName"))
        yield Hit(
            f"renaming value {node['oldVal']!r} of {name} to {node.get('newVal')!r}: the"
            " application version running during and after the deploy still writes and"
            f" compares {node['oldVal']!r}, which is now an invalid input value for the enum"
        )
