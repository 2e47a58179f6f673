"""Rule identity-change: DROP IDENTITY or SET GENERATED ALWAYS on an existing column."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint import tree
from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.registry import Hit, Rule, register

_ALWAYS = ord("a")  # generated_when: 'a' ALWAYS, 'd' BY DEFAULT


@register
class IdentityChange(Rule):
    code = "identity-change"
    category = "compatibility"
    summary = "DROP IDENTITY or SET GENERATED ALWAYS breaks inserts of the running application"
    help = (
        "for DROP IDENTITY: first deploy code that supplies the value (or set a DEFAULT"
        " nextval() of a sequence of your own); for GENERATED ALWAYS: first deploy code that"
        " never writes the column, or keep BY DEFAULT"
    )
    nodes = ("AlterTableStmt",)
    in_rollback = False

    def check(self, stmt: Stmt, ctx: LintContext) -> Iterator[Hit]:
        table = tree.table(stmt.node.get("relation"))
        if ctx.is_new(table):
            return
        for subtype, cmd in tree.alter_commands(stmt.node):
            column = f"{table}.{cmd.get('name')}"
            if subtype == "AT_DropIdentity":
                yield Hit(
                    f"dropping the identity of {column} drops its sequence: inserts that leave"
                    " the column out get NULL (and fail if it is NOT NULL or a key)"
                )
            elif subtype == "AT_SetIdentity" and self._sets_always(cmd):
                yield Hit(
                    f"{column} becomes GENERATED ALWAYS: inserts of the running application"
                    " that supply a value fail unless they say OVERRIDING SYSTEM VALUE"
                )

    @staticmethod
    def _sets_always(cmd: tree.Node) -> bool:
        items = (cmd.get("def") or {}).get("List", {}).get("items") or ()
        for item in items:
            option = item.get("DefElem", {})
            if option.get("defname") == "generated":
                return bool(option.get("arg", {}).get("Integer", {}).get("ival") == _ALWAYS)
        return False
