"""Rule drop-schema: dropping a schema drops everything in it."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.registry import Hit, Rule, register


@register
class DropSchema(Rule):
    code = "drop-schema"
    category = "data-loss"
    summary = "dropping a schema loses every table, function and type in it"
    help = "drop the objects one by one, each in its own reviewed migration"
    nodes = ("DropStmt",)
    destructive = True
    in_rollback = False

    def check(self, stmt: Stmt, ctx: LintContext) -> Iterator[Hit]:
        node = stmt.node
        if node.get("removeType") != "OBJECT_SCHEMA":
            return
        for item in node.get("objects") or ():
            name = item.get("String", {}).get("sval", "?")
            yield Hit(f"dropping schema {name} deletes every object in it, with its data")
