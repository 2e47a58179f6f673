"""A backfill's one data statement, checked and rewritten on its parse tree into a key-range batch.

A backfill is written as if for the whole table (``UPDATE t ...``, ``DELETE FROM t ...``,
``INSERT INTO t ... SELECT ... FROM s ...``). pgshift runs it in batches along a key: the
statement gets ``key > lower AND key <= upper`` ANDed to its WHERE, built as parse-tree nodes
(row comparisons for a composite key), and the tree is printed back by pglast's deparser, so
comments, quoting and odd spellings of the original can never break the rewrite. The key's
columns come from the catalog (db/backfill.py reads them); this module only takes them.

The batch bounds travel as parameters ($1, $2, ...) so one prepared statement serves every
batch: the server infers each parameter's type from the key column it is compared with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pglast import ast, enums, parse_sql
from pglast.parser import ParseError
from pglast.stream import RawStream

UPDATE, DELETE, INSERT = "update", "delete", "insert"


class NotABackfill(ValueError):
    """The statement cannot run as a backfill; the message says why, for a person."""


@dataclass(frozen=True)
class Relation:
    """A table as the statement names it: schema (None: found on the search_path) and name."""

    schema: str | None
    name: str

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


@dataclass(frozen=True)
class BackfillShape:
    """What a backfill statement does, read from its tree.

    ``key_table`` is the table whose key the batches follow: the table written for UPDATE and
    DELETE, the first table of the SELECT's FROM for INSERT ... SELECT. ``reference`` is the
    name through which the statement sees it (its alias, else its name): key columns are
    qualified with it, so they stay unambiguous next to the tables of a FROM or USING list.
    ``assigned`` are the columns an UPDATE sets.
    """

    kind: str
    table: Relation
    key_table: Relation
    reference: str
    assigned: tuple[str, ...] = ()


@dataclass(frozen=True)
class BatchStatements:
    """The statement over one key range, in the two forms a backfill needs.

    ``first`` runs the first batch: ``key <= $1..$k`` (no lower bound: keys start wherever they
    start); ``following`` every other: ``key > $1..$k AND key <= $k+1..$2k``. The bounds are
    keys read from the table (the upper bound of a batch is the lower bound of the next).
    """

    first: str
    following: str
    key: tuple[str, ...]


def _parse(sql: str) -> Any:
    try:
        statements = parse_sql(sql)
    except ParseError as exc:
        raise NotABackfill(f"the statement does not parse: {exc}") from None
    if len(statements) != 1:
        raise NotABackfill(
            f"a backfill holds exactly one data statement; this has {len(statements)}"
        )
    return statements[0].stmt


def _relation(node: Any) -> Relation:
    return Relation(node.schemaname or None, node.relname)


def _reference(node: Any) -> str:
    return str(node.alias.aliasname) if node.alias is not None else str(node.relname)


def _refuse_common(stmt: Any, what: str) -> None:
    if stmt.withClause is not None:
        raise NotABackfill(
            f"{what} has a WITH clause: it would run again in every batch (and a data-modifying"
            " WITH would not be batched at all); write the one statement without it"
        )
    # pglast 8 (PostgreSQL 18's parser) holds it in returningClause, 7 in returningList.
    if getattr(stmt, "returningClause", None) or getattr(stmt, "returningList", None):
        raise NotABackfill(
            f"{what} has RETURNING: a backfill's rows go to nobody; remove the RETURNING clause"
        )
    if isinstance(getattr(stmt, "whereClause", None), ast.CurrentOfExpr):
        raise NotABackfill(f"{what} uses WHERE CURRENT OF: a backfill has no cursor")


def _leftmost_table(node: Any) -> Any:
    """The table a FROM item starts with, through inner and left joins only.

    A right or full join can yield rows that have no row of that table: a key range on it
    would drop them, so the statement is refused instead of changed.
    """
    if isinstance(node, ast.RangeVar):
        return node
    if isinstance(node, ast.JoinExpr):
        if node.jointype not in (enums.JoinType.JOIN_INNER, enums.JoinType.JOIN_LEFT):
            raise NotABackfill(
                "the SELECT's FROM starts with a RIGHT or FULL join: batches follow the key of"
                " its first table, and rows without one would be lost"
            )
        return _leftmost_table(node.larg)
    raise NotABackfill(
        "the SELECT's FROM starts with a subquery or a function: batches follow the key of a"
        " table, so the first item of FROM must be one"
    )


def _select_source(select: Any) -> Any:
    """The key table of an INSERT's SELECT, after refusing what batching would change."""
    if select is None or select.valuesLists:
        raise NotABackfill(
            "INSERT ... VALUES is not a backfill: the INSERT must read its rows with"
            " SELECT ... FROM a table"
        )
    if select.op != enums.SetOperation.SETOP_NONE:
        raise NotABackfill(
            "the SELECT combines queries (UNION, INTERSECT, EXCEPT): batches must follow the"
            " key of one table"
        )
    if select.withClause is not None:
        raise NotABackfill("the SELECT has a WITH clause: it would run again in every batch")
    refused = (
        ("distinctClause", "DISTINCT"),
        ("groupClause", "GROUP BY"),
        ("havingClause", "HAVING"),
        ("windowClause", "WINDOW"),
        ("limitCount", "LIMIT"),
        ("limitOffset", "OFFSET"),
    )
    for attribute, words in refused:
        if getattr(select, attribute):
            raise NotABackfill(
                f"the SELECT has {words}: per batch it would give a different result than over"
                " the whole table"
            )
    if not select.fromClause:
        raise NotABackfill("the SELECT reads no table (no FROM): there is nothing to batch")
    return _leftmost_table(select.fromClause[0])


def _shape(stmt: Any) -> BackfillShape:
    if isinstance(stmt, ast.UpdateStmt):
        _refuse_common(stmt, "the UPDATE")
        assigned = tuple(str(t.name) for t in stmt.targetList or ())
        table = _relation(stmt.relation)
        return BackfillShape(UPDATE, table, table, _reference(stmt.relation), assigned)
    if isinstance(stmt, ast.DeleteStmt):
        _refuse_common(stmt, "the DELETE")
        table = _relation(stmt.relation)
        return BackfillShape(DELETE, table, table, _reference(stmt.relation))
    if isinstance(stmt, ast.InsertStmt):
        _refuse_common(stmt, "the INSERT")
        source = _select_source(stmt.selectStmt)
        table, key_table = _relation(stmt.relation), _relation(source)
        if table == key_table:
            raise NotABackfill(
                f"the INSERT reads the table it writes ({table}): later batches would read"
                " the rows earlier batches inserted"
            )
        return BackfillShape(INSERT, table, key_table, _reference(source))
    raise NotABackfill(
        f"a backfill runs one UPDATE, DELETE or INSERT ... SELECT; this is {_words(stmt)}"
        " (schema changes belong in a migration of their own)"
    )


def _words(stmt: Any) -> str:
    """``AlterTableStmt`` as ``ALTER TABLE``: the node's name in a person's words."""
    name = type(stmt).__name__.removesuffix("Stmt")
    words = "".join(" " + c if c.isupper() and i else c for i, c in enumerate(name))
    return words.upper()


def shape_of(sql: str) -> BackfillShape:
    """What the statement ``sql`` does as a backfill, or NotABackfill saying why it cannot be."""
    return _shape(_parse(sql))


def _column(reference: str, name: str) -> Any:
    return ast.ColumnRef(fields=(ast.String(sval=reference), ast.String(sval=name)))


def _side(nodes: Sequence[Any]) -> Any:
    """One operand of a key comparison: the node itself, or a row of them for a composite key."""
    if len(nodes) == 1:
        return nodes[0]
    return ast.RowExpr(args=tuple(nodes), row_format=enums.CoercionForm.COERCE_IMPLICIT_CAST)


def _compare(operator: str, reference: str, key: Sequence[str], first_param: int) -> Any:
    columns = [_column(reference, name) for name in key]
    params = [ast.ParamRef(number=first_param + i) for i in range(len(key))]
    return ast.A_Expr(
        kind=enums.A_Expr_Kind.AEXPR_OP,
        name=(ast.String(sval=operator),),
        lexpr=_side(columns),
        rexpr=_side(params),
    )


def _and(existing: Any, added: list[Any]) -> Any:
    """``existing AND added...``: the deparser parenthesises an OR it finds inside."""
    if isinstance(existing, ast.BoolExpr) and existing.boolop == enums.BoolExprType.AND_EXPR:
        args = list(existing.args or ())  # flattened: the meaning is the same, the text plainer
    else:
        args = [existing] if existing is not None else []
    args += added
    if len(args) == 1:
        return args[0]
    return ast.BoolExpr(boolop=enums.BoolExprType.AND_EXPR, args=tuple(args))


def _with_range(sql: str, key: Sequence[str], *, lower: bool) -> str:
    stmt = _parse(sql)
    shape = _shape(stmt)
    k = len(key)
    bounds = [_compare(">", shape.reference, key, 1)] if lower else []
    bounds.append(_compare("<=", shape.reference, key, k + 1 if lower else 1))
    holder: Any = stmt.selectStmt if isinstance(stmt, ast.InsertStmt) else stmt
    holder.whereClause = _and(holder.whereClause, bounds)
    return str(RawStream()(stmt))


def batch_statements(sql: str, key: Sequence[str]) -> BatchStatements:
    """``sql`` rewritten over a key range along ``key`` (column names of the key table).

    Refuses (NotABackfill) an UPDATE that sets a key column: a row moved ahead of the range
    already done would be updated again by a later batch.
    """
    key = tuple(key)
    if not key:
        raise ValueError("a batch key needs at least one column")
    if len(set(key)) != len(key):
        raise ValueError(f"a key column is named twice: {key}")
    shape = shape_of(sql)
    moved = [c for c in shape.assigned if c in key]
    if moved:
        raise NotABackfill(
            f"the UPDATE sets the key column {moved[0]}: batches follow the key, so a row given"
            " a key further on would be updated again; choose another @batch-key"
        )
    return BatchStatements(
        first=_with_range(sql, key, lower=False),
        following=_with_range(sql, key, lower=True),
        key=key,
    )
