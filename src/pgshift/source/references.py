"""Which tables a migration's SQL names, and which it creates, read from its parse tree.

`baseline` and `validate --roundtrip` build a schema on a scratch database where other tools'
bookkeeping tables do not exist; a migration that refers to one (Lemmy puts a trigger on
Diesel's `__diesel_schema_migrations`) would fail there, so those tables are copied from the
target first, unless a migration creates one itself.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any


def named_tables(
    sql_texts: Iterable[str], names: Collection[str]
) -> tuple[frozenset[str], frozenset[str]]:
    """Of ``names`` (bare table names), those the SQL refers to and those it creates.

    A reference is any relation in a statement's tree (FROM, INSERT INTO, ALTER TABLE,
    CREATE TRIGGER ... ON, GRANT ... ON, ...), whatever its schema; text inside a function body
    or a DO block is not SQL to the parser and is not looked at. A text that does not parse
    names nothing (the loader reports it).
    """
    from pglast import ast, parse_sql
    from pglast.parser import ParseError

    wanted = frozenset(names)
    referred: set[str] = set()
    created: set[str] = set()
    for text in sql_texts:
        try:
            statements = parse_sql(text)
        except ParseError:
            continue
        for raw in statements:
            root = raw.stmt
            target = None
            if isinstance(root, ast.CreateStmt):
                target = root.relation
            elif isinstance(root, ast.CreateTableAsStmt) and root.into is not None:
                target = root.into.rel
            if target is not None and target.relname in wanted:
                created.add(str(target.relname))
            _collect(root, wanted, referred)
    return frozenset(referred), frozenset(created)


def _collect(node: Any, wanted: frozenset[str], out: set[str]) -> None:
    from pglast import ast

    if isinstance(node, (list, tuple)):
        for child in node:
            _collect(child, wanted, out)
        return
    if not isinstance(node, ast.Node):
        return
    if isinstance(node, ast.RangeVar) and node.relname in wanted:
        out.add(str(node.relname))
    for name in node:
        _collect(getattr(node, name), wanted, out)
