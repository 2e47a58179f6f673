"""Rule set-not-null: SET NOT NULL scans the whole table under an exclusive lock."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint import tree
from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.registry import Hit, Rule, register


@register
class SetNotNull(Rule):
    code = "set-not-null"
    category = "locking"
    summary = "ALTER COLUMN ... SET NOT NULL scans the table under an ACCESS EXCLUSIVE lock"
    help = (
        "add CHECK (col IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT it in a later migration"
        " (no exclusive lock), then SET NOT NULL, which skips the scan (PostgreSQL 12+)"
    )
    nodes = ("AlterTableStmt",)
    blocks = True
    rewrites = True

    def check(self, stmt: Stmt, ctx: LintContext) -> Iterator[Hit]:
        table = tree.table(stmt.node.get("relation"))
        if table is None or ctx.is_new(table):
            return
        for subtype, cmd in tree.alter_commands(stmt.node):
            column = self._column(subtype, cmd)
            if column is None:
                continue
            if ctx.pg_major >= 12 and ctx.project.not_null_proven(table, column):
                continue
            what = "SET NOT NULL" if subtype == "AT_SetNotNull" else "ADD CONSTRAINT ... NOT NULL"
            message = (
                f"{what} on {table}.{column} holds an ACCESS EXCLUSIVE lock while it"
                " reads every row to check for NULLs: reads and writes stop meanwhile"
            )
            unknown = ctx.project.unknown_validated(table) if ctx.pg_major >= 12 else []
            if unknown:
                yield _unsure(message, table, column, unknown)
                continue
            yield Hit(message, help=_help(ctx.pg_major))

    @staticmethod
    def _column(subtype: str, cmd: tree.Node) -> str | None:
        """The column a command makes NOT NULL after checking every row, else None."""
        if subtype == "AT_SetNotNull":
            return str(cmd.get("name"))
        if subtype != "AT_AddConstraint":
            return None
        con = tree.constraint_def(cmd)
        if con.get("contype") != "CONSTR_NOTNULL" or con.get("skip_validation"):
            return None
        keys = tree.strings(con.get("keys"))
        return keys[0] if keys else None


def _unsure(message: str, table: tree.TableName, column: str, unknown: list[str]) -> Hit:
    """A warning, not an error: a constraint validated earlier may prove the column NOT NULL
    (the documented recipe), but no migration says what it checks."""
    names = ", ".join(unknown)
    return Hit(
        f"{message}, unless constraint {names} (validated before it, not made by these"
        f" migrations) is CHECK ({column} IS NOT NULL): then the scan is skipped",
        help=(
            f"if {names} is not CHECK ({column} IS NOT NULL), follow the rule's recipe; if it"
            " is, silence this rule on the statement with -- pgshift-ignore: set-not-null"
        ),
        severity="warning",
    )


def _help(pg_major: int) -> str | None:
    """The cheapest recipe the target version has; None for the rule's own (12 to 17)."""
    if pg_major < 12:
        return (
            f"PostgreSQL {pg_major} always scans: keep a validated"
            " CHECK (col IS NOT NULL) instead of NOT NULL until you upgrade"
        )
    if pg_major >= 18:
        return (
            "ADD CONSTRAINT name NOT NULL col NOT VALID (new rows are checked at once), then"
            " VALIDATE CONSTRAINT name in a later migration: it scans under a SHARE UPDATE"
            " EXCLUSIVE lock only, and the column is NOT NULL afterwards (PostgreSQL 18+)"
        )
    return None
