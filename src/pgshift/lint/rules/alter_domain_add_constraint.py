"""Rule alter-domain-add-constraint: a domain constraint checked against every column using it."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint import tree
from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.registry import Hit, Rule, register


@register
class AlterDomainAddConstraint(Rule):
    code = "alter-domain-add-constraint"
    category = "locking"
    summary = "ALTER DOMAIN ... ADD CONSTRAINT scans every table with a column of the domain"
    help = "add it with NOT VALID, then ALTER DOMAIN ... VALIDATE CONSTRAINT in a later migration"
    nodes = ("AlterDomainStmt",)
    blocks = True
    rewrites = True

    def check(self, stmt: Stmt, ctx: LintContext) -> Iterator[Hit]:
        node = stmt.node
        if node.get("subtype") != "C":
            return
        con = (node.get("def") or {}).get("Constraint", {})
        if con.get("skip_validation"):
            return
        name = ".".join(tree.strings(node.get("typeName")))
        yield Hit(
            f"adding a constraint to domain {name} checks every row of every table that uses it,"
            " holding a SHARE lock on each: writes to all of them wait"
        )
