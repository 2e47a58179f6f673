"""Rule drop-trigger: DROP TRIGGER stops what the trigger did, and blocks and breaks nothing."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint import tree
from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.registry import Hit, Rule, register
from pgshift.source.locks import mode_of


@register
class DropTrigger(Rule):
    """A note, not an error: the drop is catalog-only and no query of the application fails
    because a trigger is gone; what changes is what happens on every write from now on."""

    code = "drop-trigger"
    severity = "note"
    category = "semantics"
    summary = "DROP TRIGGER: what the trigger did on every write silently stops"
    help = (
        "make sure nothing relies on what it did (an audit table, a synchronised column, a"
        " check), or move that work into the application first"
    )
    nodes = ("DropStmt",)
    in_rollback = False  # undoing a CREATE TRIGGER is what a rollback is for

    def check(self, stmt: Stmt, ctx: LintContext) -> Iterator[Hit]:
        if stmt.node.get("removeType") != "OBJECT_TRIGGER":
            return
        for item in stmt.node.get("objects") or ():
            parts = tree.strings(item.get("List", {}).get("items"))  # [schema.]table.trigger
            if len(parts) < 2:
                continue
            table = tree.TableName(parts[-3] if len(parts) > 2 else None, parts[-2])
            if ctx.is_new(table):
                continue
            on = ".".join(parts[:-1])
            yield Hit(
                f"dropping trigger {parts[-1]} on {on}: what it did on every write (audit, sync,"
                f" checks) silently stops; it takes a brief {mode_of('DROP TRIGGER')} lock on"
                f" {on}"
            )
