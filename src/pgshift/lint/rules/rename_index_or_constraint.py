"""Rule rename-index-or-constraint: renaming an index or a constraint (a catalog-only change)."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint import tree
from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.registry import Hit, Rule, register

_KINDS = {
    "OBJECT_INDEX": "index",
    "OBJECT_TABCONSTRAINT": "constraint",
    "OBJECT_DOMCONSTRAINT": "domain constraint",
}


@register
class RenameIndexOrConstraint(Rule):
    code = "rename-index-or-constraint"
    severity = "note"
    category = "semantics"
    summary = "renaming an index or constraint breaks code that names it (ON CONFLICT, errors)"
    help = (
        "check that no code names it: ON CONFLICT ON CONSTRAINT, error handling that matches"
        " the constraint name, index hints, monitoring; the rename itself is catalog-only"
    )
    nodes = ("RenameStmt",)

    def check(self, stmt: Stmt, ctx: LintContext) -> Iterator[Hit]:
        node = stmt.node
        kind = _KINDS.get(str(node.get("renameType")))
        if kind is None:
            return
        relation = tree.table(node.get("relation"))
        if kind == "index" and relation is not None and relation.name in ctx.new_indexes:
            return
        if kind == "constraint" and ctx.is_new(relation):
            return
        old = str(relation) if kind == "index" else str(node.get("subname"))
        users = (
            "scripts, hints and monitoring that name it, and code matching the unique-violation"
            " errors that name a unique index,"
            if kind == "index"
            else "statements of the running application that name it (ON CONFLICT ON"
            " CONSTRAINT, error handling by constraint name)"
        )
        yield Hit(
            f"renaming {kind} {old} to {node.get('newname')}: only the catalog changes, but"
            f" {users} stop matching"
        )
