"""Rule drop-object: DROP of a view, function, type, sequence, domain, extension, policy or rule.

DROP TRIGGER has its own rule (drop-trigger, a note): nothing running fails because a trigger
is gone. A dropped policy changes which rows a role sees, and a dropped rule what a query does.
"""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint import tree
from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.registry import Hit, Rule, register
from pgshift.source.locks import mode_of

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
    "OBJECT_POLICY": "policy",
    "OBJECT_RULE": "rule",
}

#: Objects of a table whose drop locks the table (the lock table says how), not only themselves.
_ON_TABLE = {"policy": "DROP POLICY", "rule": "DROP RULE"}


def _item_name(item: tree.Node, kind: str) -> str:
    if kind in _ON_TABLE:  # [schema.]table.name
        parts = tree.strings(item.get("List", {}).get("items"))
        return f"{parts[-1]} on {'.'.join(parts[:-1])}" if len(parts) > 1 else ".".join(parts)
    for key in ("List", "ObjectWithArgs", "TypeName"):
        inner = item.get(key)
        if isinstance(inner, dict):
            return tree.qualified(inner.get("items") or inner.get("objname") or inner.get("names"))
    return str(item.get("String", {}).get("sval", "?"))


@register
class DropObject(Rule):
    code = "drop-object"
    category = "compatibility"
    summary = "dropping a view, function, type, sequence, domain, extension, policy or rule"
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
            "policy": "the rows it let through or kept out follow the other policies from now on",
            "rule": "what it rewrote queries into silently stops",
        }.get(kind, "queries of the running application that use it start failing")
        extra = ", and with CASCADE everything that depends on it" if cascade else ""
        for item in node.get("objects") or ():
            lock = ""
            if kind in _ON_TABLE:  # a brief lock, but it queues behind every query of the table
                table = ".".join(tree.strings(item.get("List", {}).get("items"))[:-1])
                lock = f"; it takes an {mode_of(_ON_TABLE[kind])} lock on {table}"
            yield Hit(f"dropping {kind} {_item_name(item, kind)}: {effect}{extra}{lock}")
