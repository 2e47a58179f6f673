"""Rule vacuum-full: VACUUM FULL rewrites the table under an ACCESS EXCLUSIVE lock."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint import tree
from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.registry import Hit, Rule, register


@register
class VacuumFull(Rule):
    code = "vacuum-full"
    category = "rewrite"
    summary = "VACUUM FULL rewrites the table while nobody can read or write it"
    help = "use pg_repack or pg_squeeze, which rebuild the table online; plain VACUUM is safe"
    nodes = ("VacuumStmt",)
    blocks = True
    rewrites = True

    def check(self, stmt: Stmt, ctx: LintContext) -> Iterator[Hit]:
        node = stmt.node
        if "full" not in tree.def_names(node.get("options")):
            return
        names = [
            str(tree.table(rel.get("VacuumRelation", {}).get("relation")))
            for rel in node.get("rels") or ()
        ]
        what = ", ".join(names) if names else "every table of the database"
        yield Hit(
            f"VACUUM FULL rewrites {what} holding an ACCESS EXCLUSIVE lock: reads and writes"
            " stop until the copy is finished"
        )
