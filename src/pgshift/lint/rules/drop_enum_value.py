"""Rule drop-enum-value: deleting an enum value from the catalog, which PostgreSQL cannot do."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint import tree
from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.registry import Hit, Rule, register


@register
class DropEnumValue(Rule):
    code = "drop-enum-value"
    category = "data-loss"
    summary = "deleting from pg_enum to drop an enum value corrupts the rows and indexes using it"
    help = (
        "create a new enum type without the value, ALTER COLUMN ... TYPE new_type USING"
        " col::text::new_type (a rewrite: plan it), then DROP TYPE the old one"
    )
    nodes = ("DeleteStmt",)
    destructive = True

    def check(self, stmt: Stmt, ctx: LintContext) -> Iterator[Hit]:
        table = tree.table(stmt.node.get("relation"))
        if table is None or table.name != "pg_enum" or table.schema not in (None, "pg_catalog"):
            return
        yield Hit(
            "DELETE FROM pg_enum: PostgreSQL has no ALTER TYPE ... DROP VALUE, and removing a"
            " label from the catalog leaves rows, indexes and check constraints holding an OID"
            " that no longer maps to a value: reading them fails with invalid internal value"
        )
