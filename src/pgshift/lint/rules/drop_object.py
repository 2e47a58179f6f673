"""Rule drop-object: DROP of a view, function, type, sequence, domain or extension."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint import tree
from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.registry import Hit, Rule, register

_KINDS = {
    "OBJECT_VIEW": "view",
    "OBJECT_MATVIEW": "materialized view",
    "OBJECT_FOREIGN_TABLE": "foreign table",
    "OBJECT_SEQUENCE": "sequence",
    "OBJECT_FUNCTION": "function",
    "OBJECT_PROCEDURE": "procedure",
    "OBJECT_ROUTINE": "routine",
    "OBJECT_AGGREGATE": "aggregate",
    "OBJECT_TYPE": "type",
    "OBJECT_DOMAIN": "domain",
    "OBJECT_EXTENSION": "extension",
}


def _item_name(item: tree.Node) -> str:
    for key in ("List", "ObjectWithArgs", "TypeName"):
        inner = item.get(key)
        if isinstance(inner, dict):
            return tree.qualified(inner.get("items") or inner.get("objname") or inner.get("names"))
    return str(item.get("String", {}).get("sval", "?"))


@register
class DropObject(Rule):
    code = "drop-object"
    category = "compatibility"
    summary = "dropping a view, function, type, sequence, domain or extension"
    help = (
        "first deploy code that no longer uses it, then drop it and silence this rule on that"
        " statement with -- pgshift-ignore: drop-object"
    )
    nodes = ("DropStmt",)
    destructive = True
    in_rollback = False  # undoing a CREATE is what a rollback is for

    def check(self, stmt: Stmt, ctx: LintContext) -> Iterator[Hit]:
        node = stmt.node
        kind = _KINDS.get(str(node.get("removeType")))
        if kind is None:
            return
        cascade = node.get("behavior") == "DROP_CASCADE"
        effect = {
            "sequence": "columns whose default calls nextval() on it fail to insert",
            "type": "its columns go too (CASCADE) or the drop fails",
            "domain": "its columns go too (CASCADE) or the drop fails",
            "extension": "every function, type and operator it made goes with it",
        }.get(kind, "queries of the running application that use it start failing")
        extra = ", and with CASCADE everything that depends on it" if cascade else ""
        for item in node.get("objects") or ():
            yield Hit(f"dropping {kind} {_item_name(item)}: {effect}{extra}")
