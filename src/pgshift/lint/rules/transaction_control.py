"""Rule transaction-control: BEGIN, COMMIT, ROLLBACK or SAVEPOINT inside a migration file."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.registry import Hit, Rule, register


@register
class TransactionControl(Rule):
    code = "transaction-control"
    category = "failure"
    summary = "transaction statements in a file fight pgshift's own transaction per migration"
    help = (
        "remove them: pgshift runs each migration in its own transaction, and statements that"
        " cannot run in one (CREATE INDEX CONCURRENTLY...) outside it; use @transaction: false"
        " to run the whole file without one"
    )
    nodes = ("TransactionStmt",)

    def check(self, stmt: Stmt, ctx: LintContext) -> Iterator[Hit]:
        kind = str(stmt.node.get("kind", "")).removeprefix("TRANS_STMT_").replace("_", " ")
        yield Hit(
            f"{kind} in a migration file: a COMMIT here would make the statements before it"
            " permanent even if a later one fails, and pgshift could not record the migration"
            " atomically"
        )
