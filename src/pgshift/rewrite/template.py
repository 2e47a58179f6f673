"""SQL that pgshift writes itself, built by filling placeholders in a parsed template tree.

pgshift's own statements name the user's tables, columns and types, and carry expressions from
the user's migrations. Pasting those into text would need quoting by hand; instead a template
is parsed by the PostgreSQL parser, its placeholder identifiers (``__name``) are replaced on the
tree by real names or by nodes (a type, an expression), and pglast's deparser prints the result,
quoting every identifier as PostgreSQL needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from pglast import ast, parse_sql
from pglast.stream import RawStream


def is_node(node: Any, kind: type) -> bool:
    """``isinstance`` that leaves ``node`` typed Any: pglast's fields are all Optional, and a
    tree built by the parser has the ones its kind needs."""
    return isinstance(node, kind)


Value = str | ast.Node | tuple[str, ...]


@lru_cache(maxsize=256)
def _template(sql: str) -> tuple[ast.Node, ...]:
    return tuple(raw.stmt for raw in parse_sql(sql) if raw.stmt is not None)


def statement_tree(sql: str) -> Any:
    """The tree of the one statement ``sql`` (typed Any: pglast's fields are all Optional,
    and a tree the parser built has the ones its kind needs)."""
    return parse_sql(sql)[0].stmt


def parse_expression(sql: str) -> ast.Node:
    """The tree of one SQL expression (``amount::bigint``, ``lower(name)``)."""
    (stmt,) = parse_sql(f"SELECT {sql}")
    return stmt.stmt.targetList[0].val  # type: ignore[no-any-return,union-attr]


def parse_type(sql: str) -> ast.Node:
    """The tree of a type name as the catalog prints it (``character varying(20)``)."""
    cast = parse_expression(f"NULL::{sql}")
    return cast.typeName  # type: ignore[no-any-return,attr-defined]


def deparse(node: ast.Node) -> str:
    """``node`` printed back as SQL."""
    return str(RawStream()(node))


def _copy(node: Any) -> Any:
    if is_node(node, ast.Node):
        return type(node)(**{k: _copy(getattr(node, k, None)) for k in node})
    if isinstance(node, tuple | list):
        return tuple(_copy(item) for item in node)
    return node


def _placeholder(node: Any) -> str | None:
    """The placeholder a node stands for: a one-word column reference or type name."""
    words: Any = None
    if is_node(node, ast.ColumnRef):
        words = node.fields
    elif is_node(node, ast.TypeName) and not node.typmods and not node.arrayBounds:
        words = node.names
    if words and len(words) == 1 and isinstance(words[0], ast.String):
        name = str(words[0].sval)
        return name if name.startswith("__") else None
    return None


def _fill(node: Any, values: Mapping[str, Value]) -> Any:
    if isinstance(node, tuple | list):
        filled: list[Any] = []
        for item in node:
            names = values.get(item.sval) if is_node(item, ast.String) else None
            if isinstance(names, tuple):  # a list placeholder: one String per name
                filled.extend(ast.String(sval=n) for n in names)
            else:
                filled.append(_fill(item, values))
        return tuple(filled)
    if not is_node(node, ast.Node):
        if isinstance(node, str) and node in values:
            value = values[node]
            if not isinstance(value, str):
                raise ValueError(f"placeholder {node} needs a name here, not a tree")
            return value
        return node
    name = _placeholder(node)
    if name is not None and name in values and isinstance(values[name], ast.Node):
        return _copy(values[name])
    if is_node(node, ast.String) and node.sval in values:
        return ast.String(sval=_fill(node.sval, values))
    for key in node:
        setattr(node, key, _fill(getattr(node, key, None), values))
    return node


def fill(template: str, **values: Value) -> str:
    """``template`` with each ``__placeholder`` replaced, printed back as SQL.

    A value that is a string replaces an identifier (schema, table, column, constraint,
    function, trigger names), a tuple of strings a one-word list of names (``UPDATE OF
    __columns``); a node replaces a whole one-word column reference (an
    expression) or type name.
    """
    (tree,) = _template(template)
    return deparse(_fill(_copy(tree), values))


def column_ref(*names: str) -> ast.Node:
    """A column reference node (``new.full_name``), quoted when printed as needed."""
    return ast.ColumnRef(fields=tuple(ast.String(sval=n) for n in names))


def renamed_columns(node: ast.Node, names: Mapping[str, ast.Node]) -> ast.Node:
    """A copy of the expression ``node`` with each unqualified column reference found in
    ``names`` replaced by that node (``amount`` -> ``new.amount``)."""

    def walk(item: Any) -> Any:
        if isinstance(item, tuple | list):
            return tuple(walk(i) for i in item)
        if not is_node(item, ast.Node):
            return item
        if is_node(item, ast.ColumnRef) and len(item.fields) == 1:
            field = item.fields[0]
            if is_node(field, ast.String) and field.sval in names:
                return _copy(names[field.sval])
        for key in item:
            setattr(item, key, walk(getattr(item, key, None)))
        return item

    return walk(_copy(node))  # type: ignore[no-any-return]


def referenced_columns(node: ast.Node) -> tuple[str, ...]:
    """The unqualified column names an expression reads, in order of first use."""
    found: list[str] = []

    def walk(item: Any) -> None:
        if isinstance(item, tuple | list):
            for i in item:
                walk(i)
            return
        if not is_node(item, ast.Node):
            return
        if is_node(item, ast.ColumnRef) and len(item.fields) == 1:
            field = item.fields[0]
            if is_node(field, ast.String) and field.sval not in found:
                found.append(field.sval)
        for key in item:
            walk(getattr(item, key, None))

    walk(node)
    return tuple(found)
