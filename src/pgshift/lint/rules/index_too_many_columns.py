"""Rule index-too-many-columns: wide non-unique B-tree indexes rarely pay for themselves."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.registry import Hit, Rule, register

MAX_COLUMNS = 3


@register
class IndexTooManyColumns(Rule):
    code = "index-too-many-columns"
    severity = "warning"
    category = "style"
    summary = "a non-unique B-tree index on more than three columns"
    help = (
        "index the most selective leading columns only; use INCLUDE for columns that are only"
        " read, or a partial index"
    )
    nodes = ("IndexStmt",)
    in_rollback = False

    def check(self, stmt: Stmt, ctx: LintContext) -> Iterator[Hit]:
        node = stmt.node
        if node.get("unique") or node.get("accessMethod", "btree") != "btree":
            return
        count = len(node.get("indexParams") or ())
        if count > MAX_COLUMNS:
            yield Hit(
                f"non-unique index on {count} columns: every write updates a wide index, and"
                " queries rarely use the columns after the first few"
            )
