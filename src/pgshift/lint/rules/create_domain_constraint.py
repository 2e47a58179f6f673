"""Rule create-domain-constraint: CHECK constraints on domains are hard to change later."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint import tree
from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.registry import Hit, Rule, register


@register
class CreateDomainConstraint(Rule):
    code = "create-domain-constraint"
    severity = "warning"
    category = "locking"
    summary = "a CHECK on a domain is re-checked on every table using it whenever it changes"
    help = "put the CHECK on the table columns instead, where NOT VALID and VALIDATE are available"
    nodes = ("CreateDomainStmt",)
    in_rollback = False

    def check(self, stmt: Stmt, ctx: LintContext) -> Iterator[Hit]:
        node = stmt.node
        checks = [
            c
            for c in node.get("constraints") or ()
            if c.get("Constraint", {}).get("contype") == "CONSTR_CHECK"
        ]
        if not checks:
            return
        name = ".".join(tree.strings(node.get("domainname")))
        yield Hit(
            f"domain {name} has a CHECK constraint: changing it later means validating every"
            " column of every table that uses the domain, under locks"
        )
