"""Rule rls-without-policy: row-level security switched on for a table with no policy."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint import tree
from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.registry import Hit, Rule, register

_SWITCHES = {"AT_EnableRowSecurity": "ENABLE", "AT_ForceRowSecurity": "FORCE"}


@register
class RlsWithoutPolicy(Rule):
    code = "rls-without-policy"
    category = "compatibility"
    summary = "ENABLE ROW LEVEL SECURITY on a table no policy of the project applies to"
    help = (
        "create the policies (CREATE POLICY ... ON the table) before or in the same migration"
        " as ENABLE ROW LEVEL SECURITY"
    )
    nodes = ("AlterTableStmt",)
    in_rollback = False

    def check(self, stmt: Stmt, ctx: LintContext) -> Iterator[Hit]:
        table = tree.table(stmt.node.get("relation"))
        if table is None or ctx.project.has_policy(table) or self._policy_later(table, stmt, ctx):
            return
        for subtype, _cmd in tree.alter_commands(stmt.node):
            switch = _SWITCHES.get(subtype)
            if switch is None:
                continue
            who = (
                "every role but superusers and BYPASSRLS roles, the owner included,"
                if switch == "FORCE"
                else "every role but the owner, superusers and BYPASSRLS roles"
            )
            yield Hit(
                f"{switch} ROW LEVEL SECURITY on {table}, which no CREATE POLICY of the project"
                f" applies to: {who} then sees no rows and can write none (default deny)"
            )

    @staticmethod
    def _policy_later(table: tree.TableName, stmt: Stmt, ctx: LintContext) -> bool:
        for later in ctx.later(stmt):
            if later.kind == "CreatePolicyStmt":
                target = tree.table(later.node.get("table"))
                if target is not None and target.same(table):
                    return True
        return False
