"""Rule prefer-bigint-key: integer and smallint keys run out of values."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint import tree
from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.registry import Hit, Rule, register
from pgshift.lint.rules._common import SMALL_INT_TYPES, column_defs, type_location

_KEY_KINDS = frozenset({"CONSTR_PRIMARY", "CONSTR_FOREIGN", "CONSTR_UNIQUE"})


@register
class PreferBigintKey(Rule):
    code = "prefer-bigint-key"
    severity = "warning"
    category = "style"
    summary = "an integer or smallint key or reference runs out of values"
    help = "use bigint (bigint GENERATED ALWAYS AS IDENTITY for a surrogate key)"
    nodes = ("CreateStmt", "AlterTableStmt")
    in_rollback = False

    def check(self, stmt: Stmt, ctx: LintContext) -> Iterator[Hit]:
        keyed = self._table_keys(stmt)
        for column in column_defs(stmt.kind, stmt.node):
            name = tree.type_name(column)
            if name not in SMALL_INT_TYPES:
                continue
            kinds = {c.get("contype") for c in tree.constraints(column)}
            if not (kinds & _KEY_KINDS or column.get("colname") in keyed):
                continue
            limit = "32767" if name in ("int2", "smallint", "smallserial", "serial2") else "2.1e9"
            yield Hit(
                f"key column {column.get('colname')} is {name}: past {limit} values inserts fail,"
                " and widening it later rewrites the table and every table referencing it",
                at=type_location(column),
            )

    @staticmethod
    def _table_keys(stmt: Stmt) -> set[str]:
        """Columns named by table-level PRIMARY KEY / FOREIGN KEY constraints."""
        keys: set[str] = set()
        if stmt.kind != "CreateStmt":
            return keys
        for element in stmt.node.get("tableElts") or ():
            con = element.get("Constraint")
            if not isinstance(con, dict) or con.get("contype") not in _KEY_KINDS - {
                "CONSTR_UNIQUE"
            }:
                continue
            keys.update(tree.strings(con.get("keys")))
            keys.update(tree.strings(con.get("fk_attrs")))
        return keys
