"""Which names of an expanded table's old shape a statement uses, read from its parse tree.

`pgshift contract --check` asks whether any code still runs statements written for the old
shape: it reads the statements sessions run (pg_stat_activity) and have run
(pg_stat_statements) and looks, in each one's parse tree, for a relation of an expanded table
together with a column only the old shape has (a column renamed away or dropped), or for the
old name of a renamed table. A name is matched as PostgreSQL's parser sees it (quoted or not,
folded), never by searching the text: `name` in a string constant or a comment is not a use.
A statement that also names a column only the new shape has is not the old code's (the
expansion's own backfill, an index built for the new shape).

What it cannot tell: which table an unqualified column belongs to when the statement names
several tables (a column of that name on another table counts), and which schema an
unqualified table name resolves to (search_path); both err towards reporting a use.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pgshift.rewrite.expand import OldShape


def old_names_in(text: str, shapes: Sequence[OldShape]) -> tuple[str, ...] | None:
    """The old-shape names ``text`` uses, as ``schema.table.column`` (an old column) or
    ``schema.table`` (a renamed table's old name), in the order of ``shapes``; None when the
    text does not parse (cut short by track_activity_query_size, or not SQL)."""
    from pglast import parse_sql
    from pglast.parser import ParseError

    try:
        tree = parse_sql(text)
    except ParseError:
        return None
    relations: set[tuple[str | None, str]] = set()
    columns: set[str] = set()
    _collect(tree, relations, columns)
    found: list[str] = []
    for shape in shapes:
        if not _names_table(relations, shape) or any(c in columns for c in shape.new_columns):
            continue
        where = f"{shape.schema}.{shape.table}"
        if shape.table_renamed:
            found.append(where)
        found.extend(f"{where}.{c}" for c in shape.columns if c in columns)
    return tuple(found)


def _names_table(relations: set[tuple[str | None, str]], shape: OldShape) -> bool:
    return (shape.schema, shape.table) in relations or (None, shape.table) in relations


def _collect(node: Any, relations: set[tuple[str | None, str]], columns: set[str]) -> None:
    """Every relation and every column name the tree refers to.

    Columns are column references (``a.name``, ``name``), the target columns of an INSERT, an
    UPDATE's SET and an ON CONFLICT's DO UPDATE SET, and the index elements of ON CONFLICT
    (``name``); a SELECT's output alias (``AS name``) is not a column and is not collected.
    """
    from pglast import ast

    if isinstance(node, list | tuple):
        for child in node:
            _collect(child, relations, columns)
        return
    if not isinstance(node, ast.Node):
        return
    if isinstance(node, ast.RangeVar):
        relations.add((node.schemaname, str(node.relname)))
    else:
        columns.update(_column_names(node))
    for name in node:
        _collect(getattr(node, name), relations, columns)


def _column_names(node: Any) -> list[str]:
    """The column names ``node`` itself names (not its children)."""
    from pglast import ast

    if isinstance(node, ast.ColumnRef):
        names = [str(f.sval) for f in node.fields or () if isinstance(f, ast.String)]
        return names[-1:]
    if isinstance(node, ast.IndexElem):
        return [str(node.name)] if node.name else []
    if isinstance(node, ast.InsertStmt):
        return [str(t.name) for t in node.cols or () if t.name]
    if isinstance(node, ast.UpdateStmt | ast.OnConflictClause):
        return [str(t.name) for t in node.targetList or () if t.name]
    return []


__all__ = ["old_names_in"]
