"""Rule rename-table: renaming a table, or moving it to another schema, breaks running code."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint import tree
from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.registry import Hit, Rule, register


@register
class RenameTable(Rule):
    code = "rename-table"
    category = "compatibility"
    summary = "renaming a table (or SET SCHEMA) breaks every running query that names it"
    help = (
        "create the new table, write to both, backfill, move reads, then drop the old one;"
        " or rename and leave a view with the old name until no code uses it"
    )
    nodes = ("RenameStmt", "AlterObjectSchemaStmt")

    def check(self, stmt: Stmt, ctx: LintContext) -> Iterator[Hit]:
        node = stmt.node
        table = tree.table(node.get("relation"))
        if ctx.is_new(table):
            return
        if stmt.kind == "RenameStmt" and node.get("renameType") == "OBJECT_TABLE":
            yield Hit(
                f"renaming table {table} to {node.get('newname')}: the application version"
                " running during and after the deploy still uses the old name and fails"
            )
        elif stmt.kind == "AlterObjectSchemaStmt" and node.get("objectType") == "OBJECT_TABLE":
            yield Hit(
                f"moving table {table} to schema {node.get('newschema')}: queries that find"
                " it through the search_path or by its old qualified name fail"
            )
