"""Rule drop-table: dropping a table loses its data and breaks code that still uses it."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint import tree
from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.registry import Hit, Rule, register


@register
class DropTable(Rule):
    code = "drop-table"
    category = "data-loss"
    summary = "dropping a table loses its data and breaks code that still uses it"
    help = (
        "first deploy code that no longer uses the table (and keep a backup), then drop it"
        " and silence this rule on that statement with -- pgshift-ignore: drop-table"
    )
    nodes = ("DropStmt",)
    destructive = True
    in_rollback = False

    def check(self, stmt: Stmt, ctx: LintContext) -> Iterator[Hit]:
        node = stmt.node
        if node.get("removeType") != "OBJECT_TABLE":
            return
        for item in node.get("objects") or ():
            names = tree.strings(item.get("List", {}).get("items"))
            if not names:
                continue
            name = tree.TableName(names[-2] if len(names) > 1 else None, names[-1])
            if ctx.is_new(name):
                continue
            cascade = (
                " and, with CASCADE, everything that depends on it"
                if node.get("behavior") == "DROP_CASCADE"
                else ""
            )
            yield Hit(
                f"dropping table {name} deletes its rows for good{cascade}; queries of the"
                " running application that use it start failing"
            )
