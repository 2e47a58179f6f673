"""Rule rename-object: renaming (or moving) a view, function, type or other named object."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint import tree
from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.registry import Hit, Rule, register

#: Objects the application names in its queries; tables and columns have their own rules.
KINDS = {
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
    "OBJECT_SCHEMA": "schema",
    "OBJECT_EXTENSION": "extension",
}


def object_name(node: tree.Node) -> str:
    """The name a RenameStmt, AlterObjectSchemaStmt or DropStmt item gives its object."""
    if node.get("relation"):
        return str(tree.table(node.get("relation")))
    target = node.get("object") or {}
    if "ObjectWithArgs" in target:
        return tree.qualified(target["ObjectWithArgs"].get("objname"))
    if "List" in target:
        return tree.qualified(target["List"].get("items"))
    if "String" in target:
        return str(target["String"].get("sval"))
    return str(node.get("subname") or "")


@register
class RenameObject(Rule):
    code = "rename-object"
    category = "compatibility"
    summary = "renaming a view, function, type, sequence, domain or schema breaks running code"
    help = (
        "create the object under the new name beside the old one (a view or function can"
        " simply call the other), move the application to it, then drop the old one later"
    )
    nodes = ("RenameStmt", "AlterObjectSchemaStmt")

    def check(self, stmt: Stmt, ctx: LintContext) -> Iterator[Hit]:
        node = stmt.node
        if stmt.kind == "RenameStmt":
            kind = KINDS.get(str(node.get("renameType")))
            change = f"renaming {{}} {{}} to {node.get('newname')}"
        else:
            kind = KINDS.get(str(node.get("objectType")))
            change = f"moving {{}} {{}} to schema {node.get('newschema')}"
        if kind is None:
            return
        name = object_name(node)
        if node.get("relation") and ctx.is_new(tree.table(node.get("relation"))):
            return
        yield Hit(
            change.format(kind, name) + ": the application version running during and after"
            " the deploy still uses the old name, and its queries fail"
        )
