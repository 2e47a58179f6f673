"""Rule constraint-missing-not-valid: FOREIGN KEY and CHECK constraints validated under lock."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint import tree
from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.registry import Hit, Rule, register
from pgshift.source.locks import mode_of

#: From the lock table (source/lock_table.py), which tests check against the server.
_FK_MODE = mode_of("ALTER TABLE ADD CONSTRAINT FOREIGN KEY")
_CHECK_MODE = mode_of("ALTER TABLE ADD CONSTRAINT CHECK")
_KINDS = {"CONSTR_FOREIGN": "FOREIGN KEY", "CONSTR_CHECK": "CHECK"}


@register
class ConstraintMissingNotValid(Rule):
    code = "constraint-missing-not-valid"
    category = "locking"
    summary = "FOREIGN KEY or CHECK added without NOT VALID checks every row under lock"
    help = (
        "add it with NOT VALID (new rows are checked at once), then run"
        " ALTER TABLE ... VALIDATE CONSTRAINT in a later migration: it takes only a"
        " SHARE UPDATE EXCLUSIVE lock, so reads and writes go on"
    )
    nodes = ("AlterTableStmt",)
    blocks = True
    rewrites = True

    def check(self, stmt: Stmt, ctx: LintContext) -> Iterator[Hit]:
        table = tree.table(stmt.node.get("relation"))
        if table is None:
            return
        new = ctx.is_new(table)
        for subtype, cmd in tree.alter_commands(stmt.node):
            if subtype == "AT_AddConstraint" and not new:
                con = tree.constraint_def(cmd)
                kind = _KINDS.get(str(con.get("contype")))
                if kind is None or con.get("skip_validation"):
                    continue
                yield Hit(self._message(kind, table, con), at=tree.location(con))
            elif subtype == "AT_AddColumn" and not new:
                column = tree.column_def(cmd)
                for con in tree.constraints(column):
                    if con.get("contype") == "CONSTR_CHECK":
                        yield Hit(
                            f"column {column.get('colname')} is added with a CHECK constraint:"
                            f" PostgreSQL checks every row of {table} while holding an"
                            " ACCESS EXCLUSIVE lock",
                            at=tree.location(con),
                            help="add the column first, then add the CHECK with NOT VALID and"
                            " VALIDATE it in a later migration",
                        )
            elif subtype == "AT_ValidateConstraint" and ctx.transactional:
                name = str(cmd.get("name"))
                if name in ctx.not_valid:
                    yield Hit(
                        f"constraint {name} is validated in the same transaction that added it"
                        " NOT VALID: the lock taken by the ADD is still held during the"
                        " validating scan, so NOT VALID gained nothing",
                        help="move VALIDATE CONSTRAINT to the next migration",
                    )

    @staticmethod
    def _message(kind: str, table: tree.TableName, con: tree.Node) -> str:
        if kind == "FOREIGN KEY":
            other = tree.table(con.get("pktable"))
            return (
                f"adding a FOREIGN KEY to {table} without NOT VALID holds a {_FK_MODE}"
                f" lock on {table} and {other} while every row is checked: writes to both wait"
            )
        return (
            f"adding a CHECK constraint to {table} without NOT VALID holds an {_CHECK_MODE}"
            " lock while every row is checked: reads and writes wait"
        )
