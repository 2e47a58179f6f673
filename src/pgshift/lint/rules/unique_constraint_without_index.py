"""Rule unique-constraint-without-index: UNIQUE or PRIMARY KEY built while the table is locked."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint import tree
from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.registry import Hit, Rule, register

_KINDS = {"CONSTR_UNIQUE": "UNIQUE", "CONSTR_PRIMARY": "PRIMARY KEY"}


@register
class UniqueConstraintWithoutIndex(Rule):
    code = "unique-constraint-without-index"
    category = "locking"
    summary = "UNIQUE / PRIMARY KEY added without USING INDEX builds its index under lock"
    help = (
        "CREATE UNIQUE INDEX CONCURRENTLY first, then"
        " ALTER TABLE ... ADD CONSTRAINT name UNIQUE USING INDEX that_index (or PRIMARY KEY)"
    )
    nodes = ("AlterTableStmt",)
    blocks = True
    rewrites = True

    def check(self, stmt: Stmt, ctx: LintContext) -> Iterator[Hit]:
        table = tree.table(stmt.node.get("relation"))
        if ctx.is_new(table):
            return
        for subtype, cmd in tree.alter_commands(stmt.node):
            if subtype == "AT_AddConstraint":
                con = tree.constraint_def(cmd)
                kind = _KINDS.get(str(con.get("contype")))
                if kind is not None and not con.get("indexname"):
                    yield Hit(
                        f"adding a {kind} constraint to {table} builds its unique index while"
                        " holding an ACCESS EXCLUSIVE lock: reads and writes wait for the build",
                        at=tree.location(con),
                    )
            elif subtype == "AT_AddColumn":
                column = tree.column_def(cmd)
                for con in tree.constraints(column):
                    kind = _KINDS.get(str(con.get("contype")))
                    if kind is not None:
                        yield Hit(
                            f"column {column.get('colname')} is added as {kind}: its unique"
                            f" index is built while {table} is locked ACCESS EXCLUSIVE",
                            at=tree.location(con),
                            help="add the column, CREATE UNIQUE INDEX CONCURRENTLY, then ADD"
                            " CONSTRAINT ... USING INDEX",
                        )
