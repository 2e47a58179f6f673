"""What pre-flight reads of a statement it reads only for its table, cut from the JSON parse tree.

Why it exists: pre-flight walks every pending statement in order, and most of an `up` of new
tables is CREATE TABLE, a plain CREATE INDEX and an INSERT, which it reads for nothing but their
table (and CREATE TABLE's IF NOT EXISTS). The loader cuts that "head" from the parse it makes
anyway and the statements memo keeps it, so an `up` of files read before builds pre-flight's
small trees from it without parsing any of them again (parsing them was 0.1 ms per migration).
Plain data and no pglast import: the loader's cold path and the memo's warm path both use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: (schema or None, table, inh, relpersistence, if_not_exists) of a statement pre-flight reads
#: only for its table; if_not_exists is False but for a CREATE TABLE.
Head = tuple[str | None, str, bool, str, bool]

#: Statement kinds some pre-flight pass reads (tables_needed, referenced_tables, derive_checks
#: with its _record and _works); any other statement changes no result and is never parsed.
READ_KINDS = frozenset(
    {
        "CreateStmt",
        "CreateTableAsStmt",
        "SelectStmt",
        "AlterTableStmt",
        "IndexStmt",
        "VacuumStmt",
        "ClusterStmt",
        "InsertStmt",
        "UpdateStmt",
        "DeleteStmt",
        "MergeStmt",
        "TruncateStmt",
        "CopyStmt",
        "RenameStmt",
        "DropStmt",
        "DoStmt",
        "CallStmt",
        "ExecuteStmt",
    }
)
#: Kinds the passes read only for their target table (derive_checks parses one in full when it
#: reads more: a row change of a table already on the target).
ROW_CHANGERS = frozenset({"InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"})


def head_of(kind: str, node: Mapping[str, Any]) -> Head | None:
    """The head of a statement (``kind`` and its JSON node), or None when pre-flight reads
    more of it than its table (it then parses the statement in full).

    Exact by construction: a CREATE TABLE is read for its table and IF NOT EXISTS, a
    non-unique CREATE INDEX for every table it names (only its own, unless an expression
    names another), a row-changing statement for its target table.
    """
    rangevar = node.get("relation")
    if not isinstance(rangevar, dict):
        return None
    plain_index = kind == "IndexStmt" and not node.get("unique") and not names_table(node)
    if kind != "CreateStmt" and not plain_index and kind not in ROW_CHANGERS:
        return None
    return (
        rangevar.get("schemaname"),
        rangevar.get("relname", ""),
        bool(rangevar.get("inh", False)),
        rangevar.get("relpersistence", "p"),
        kind == "CreateStmt" and bool(node.get("if_not_exists")),
    )


def names_table(value: Any) -> bool:
    """Whether a JSON tree holds a RangeVar node (a table named inside an expression)."""
    if isinstance(value, dict):
        return "RangeVar" in value or any(names_table(v) for v in value.values())
    if isinstance(value, list):
        return any(names_table(v) for v in value)
    return False
