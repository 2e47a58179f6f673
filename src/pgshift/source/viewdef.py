"""A view's query as every supported PostgreSQL major prints it: one spelling for one meaning.

Why it exists: `pg_get_viewdef` of PostgreSQL 15 qualifies every column of a view's top-level
query (``SELECT users.id FROM users``), because until 16 a view's range table also held the
OLD and NEW entries of its rule; from 16 those entries are gone, and a top-level query over a
single FROM item prints its columns bare (``SELECT id FROM users``). Nested queries (sublinks,
subqueries in FROM, set-operation arms, CTEs) are qualified by both. A schema proven on another
major than the target's (`baseline` on the embedded server) must compare the same view as the
same, so both texts are parsed and the qualifier that only the older major prints is removed
from the top level, then printed again by pglast.
"""

from __future__ import annotations

from typing import Any


def canonical_view(text: str) -> str:
    """``text`` (a view's query as `pg_get_viewdef` printed it) in one major-independent form.

    A text pglast cannot parse is returned with its white space folded: it then compares as
    the server printed it, never raises.
    """
    from pglast import ast, parse_sql
    from pglast.parser import ParseError
    from pglast.stream import RawStream

    try:
        statements = parse_sql(text)
    except ParseError:
        return " ".join(text.split())
    if len(statements) != 1:
        return " ".join(text.split())
    root = statements[0].stmt
    if root is None:
        return " ".join(text.split())
    if isinstance(root, ast.SelectStmt):
        qualifier = _sole_from_item(root)
        if qualifier is not None:
            _unqualify(root, root, qualifier)
    return str(RawStream()(root))


def _sole_from_item(select: Any) -> str | None:
    """The name a single FROM item is referred to by, when it is the query's only range entry."""
    from pglast import ast

    if select.larg is not None:  # a set operation: its arms are nested queries
        return None
    items: tuple[Any, ...] = tuple(select.fromClause or ())
    if len(items) != 1:
        return None
    item = items[0]
    alias = getattr(item, "alias", None)
    if alias is not None and alias.aliasname:
        return str(alias.aliasname)
    if isinstance(item, ast.RangeVar):
        return str(item.relname)
    return None


def _unqualify(node: Any, root: Any, qualifier: str) -> None:
    """Drop ``qualifier.`` from the column references of ``root``'s own level, in place.

    Nested queries and the FROM and WITH clauses are left alone: there both majors qualify.
    """
    from pglast import ast

    if isinstance(node, (list, tuple)):
        for child in node:
            _unqualify(child, root, qualifier)
        return
    if not isinstance(node, ast.Node):
        return
    if isinstance(node, ast.SelectStmt) and node is not root:
        return
    if isinstance(node, ast.ColumnRef):
        fields = node.fields or ()
        first = fields[0] if fields else None
        if len(fields) == 2 and isinstance(first, ast.String) and first.sval == qualifier:
            node.fields = fields[1:]
        return
    for name in node:
        if node is root and name in ("fromClause", "withClause"):
            continue
        _unqualify(getattr(node, name), root, qualifier)
