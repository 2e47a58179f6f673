"""The state the earlier pending statements of a run leave a table in, as a query over the table.

Why it exists: pre-flight runs before anything is applied, but a check that depends on what an
earlier pending statement does (`ADD COLUMN c` then `SET NOT NULL`, `UPDATE ... SET c = ...`
then a unique index, `INSERT ... VALUES` then `NOT NULL`) must be judged on the rows as they
will be, not as they are. For the statements whose effect on the rows is plain from their parse
tree, this module builds that state as a SELECT over the table as it is today: each earlier
statement wraps the previous query, reusing the user's own expressions as parsed:

* `ADD COLUMN c t [DEFAULT d]`: ``..., CAST(d AS t) AS c`` (NULL without a default);
* `UPDATE t SET c = e WHERE w`: ``CASE WHEN w THEN CAST(e AS type) ELSE c END AS c``;
* `INSERT INTO t (...) VALUES ...`: ``UNION ALL`` the literal rows, the omitted columns given
  their defaults;
* `DELETE FROM t WHERE w`, `TRUNCATE t`: ``WHERE (w) IS NOT TRUE``, ``WHERE false``;
* `ALTER COLUMN c TYPE t [USING e]`, `DROP COLUMN`, `SET`/`DROP DEFAULT`.

A check then reads this query (a subquery the planner flattens) instead of the table, with no
more than ACCESS SHARE on the table, like any other check. What cannot be derived (an `UPDATE
... FROM`, a subquery, `INSERT ... SELECT`, `COPY`, a sequence's next value, a rename) marks the
table, or the one column, unknown with the precise reason, and the checks reading it are "not
checked". Pure: nothing here talks to a database; the catalog facts come in as values.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from pglast import ast, parse_sql
from pglast.enums import AlterTableType, BoolTestType, ConstrType, DropBehavior, SetOperation
from pglast.parser import ParseError
from pglast.stream import RawStream
from pglast.visitors import Visitor

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pgshift.rewrite.preflight import TableFacts, TableRef

#: The alias of the literal rows of an INSERT inside the state's query.
VALUES_ALIAS = "pgshift_values"

_SERIALS = {
    "smallserial": "int2",
    "serial2": "int2",
    "serial": "int4",
    "serial4": "int4",
    "bigserial": "int8",
    "serial8": "int8",
}


@dataclass(frozen=True)
class Column:
    """One column of the derived state: what it holds and what inserted rows get in it.

    ``value`` is None for "the column as the previous level has it"; ``unknown`` says why the
    column's values cannot be known before the run (a check reading it is then not checked).
    ``default`` is what a row inserted without the column gets (None: NULL), ``default_unknown``
    why that cannot be known (a sequence's next value).
    """

    name: str
    type: str  # pg_type.typname-like, what the type-change checks compare ("int8", "text")
    cast: Any  # the TypeName node of the column's type, for CASTs
    default: Any = None
    default_unknown: str | None = None
    unknown: str | None = None


@dataclass
class Relation:
    """A table as the earlier pending statements leave it: its columns and the query for its rows.

    ``query`` is None while nothing has changed its rows (a check then reads the table itself);
    ``blocked`` says why nothing of the table can be derived any more.
    """

    table: TableRef
    columns: list[Column]
    carry_ctid: bool  # the table has no primary key: examples are named by ctid
    query: Any = None
    blocked: str | None = None
    changed_at: list[str] = field(default_factory=list)  # file:line of each derived change

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)

    def unknown(self, columns: Sequence[str]) -> str | None:
        """Why a check reading ``columns`` of this table cannot be derived, or None."""
        if self.blocked is not None:
            return self.blocked
        for name in columns:
            col = self.column(name)
            if col is not None and col.unknown is not None:
                return col.unknown
        return None

    def source(self, alias: str | None = None) -> Any:
        """The derived rows as a FROM item named ``alias`` (else the table's name)."""
        return ast.RangeSubselect(
            lateral=False,
            subquery=self.query,
            alias=ast.Alias(aliasname=alias or self.table.name),
        )


def relation_of(table: TableRef, facts: TableFacts) -> Relation:
    """The table as the target has it today, before any pending statement."""
    columns = []
    for name, typname in facts.columns:
        kind, text = next(((k, e) for c, k, e in facts.defaults if c == name), ("", ""))
        default, default_unknown = _catalog_default(table, name, kind, text)
        columns.append(
            Column(name, typname, _type_node(facts.type_text(name)), default, default_unknown)
        )
    return Relation(table, columns, carry_ctid=not facts.key)


def _catalog_default(table: TableRef, column: str, kind: str, text: str) -> tuple[Any, str | None]:
    if kind == "identity":
        return None, f"rows inserted into {table} get an identity value in {column}"
    if kind == "generated":
        return None, f"{column} of {table} is generated from the row"
    if not text:
        return None, None
    try:
        stmt: Any = parse_sql(f"SELECT {text}")[0].stmt
        node = stmt.targetList[0].val
    except ParseError:
        return None, f"the default of {column} of {table} is not understood"
    if _calls(node, "nextval"):
        return None, f"rows inserted into {table} get a sequence's next value in {column}"
    return node, None


def _type_node(text: str | None) -> Any:
    """The TypeName node of a type as format_type writes it (quoted by the server)."""
    if not text:
        return None
    try:
        stmt: Any = parse_sql(f"SELECT NULL::{text}")[0].stmt
    except ParseError:
        return None
    return stmt.targetList[0].val.typeName


# -- small tree helpers -----------------------------------------------------------------------


def _col(*names: str) -> Any:
    return ast.ColumnRef(fields=tuple(ast.String(n) for n in names))


def _cast(expr: Any, type_node: Any) -> Any:
    return expr if type_node is None else ast.TypeCast(arg=expr, typeName=type_node)


def _null() -> Any:
    return ast.A_Const(isnull=True)


def _target(value: Any, name: str) -> Any:
    return ast.ResTarget(name=name, val=value)


def _deparse(node: Any) -> str:
    return str(RawStream()(node))


def _calls(node: Any, function: str) -> bool:
    found: list[bool] = []

    class _Calls(Visitor):
        def visit_FuncCall(self, _ancestors: Any, call: Any) -> None:
            if str(call.funcname[-1].sval).lower() == function:
                found.append(True)

    _Calls()(node)
    return bool(found)


def _has(node: Any, *kinds: type) -> bool:
    """Whether ``node`` holds a node of one of ``kinds`` (a subquery, a multi-assignment)."""
    found: list[bool] = []

    class _Find(Visitor):
        def visit(self, _ancestors: Any, seen: Any) -> None:
            if isinstance(seen, kinds):
                found.append(True)

    if node is not None:
        _Find()(node)
    return bool(found)


# -- building the levels ----------------------------------------------------------------------


def _base(rel: Relation) -> Any:
    """``SELECT [ctid,] c1, c2, ... FROM table``: the rows as they are today."""
    targets = [_target(_col("ctid"), "ctid")] if rel.carry_ctid else []
    targets += [_target(_col(c.name), c.name) for c in rel.columns]
    table = ast.RangeVar(
        schemaname=rel.table.schema, relname=rel.table.name, inh=True, relpersistence="p"
    )
    return ast.SelectStmt(targetList=tuple(targets), fromClause=(table,))


def _wrap(
    rel: Relation, at: str, values: dict[str, Any], where: Any = None, alias: str = ""
) -> None:
    """Wrap the state's query in one more level: each column ``values[c]`` (else itself)."""
    previous = rel.query if rel.query is not None else _base(rel)
    targets = [_target(_col("ctid"), "ctid")] if rel.carry_ctid else []
    targets += [_target(values.get(c.name, _col(c.name)), c.name) for c in rel.columns]
    source = ast.RangeSubselect(
        lateral=False, subquery=previous, alias=ast.Alias(aliasname=alias or rel.table.name)
    )
    rel.query = ast.SelectStmt(targetList=tuple(targets), fromClause=(source,), whereClause=where)
    if at not in rel.changed_at:
        rel.changed_at.append(at)


def _mark(rel: Relation, name: str, reason: str) -> None:
    """Column ``name`` of the state cannot be known before the run, for ``reason``."""
    for index, col in enumerate(rel.columns):
        if col.name == name and col.unknown is None:
            rel.columns[index] = replace(col, unknown=reason)


def _block(rel: Relation, reason: str) -> None:
    rel.blocked = rel.blocked or reason


def add_column(rel: Relation, definition: Any, where: str) -> None:
    """`ADD COLUMN`: existing rows get the default (NULL without one), cast to the type."""
    name = definition.colname
    if rel.column(name) is not None:
        return  # ADD COLUMN IF NOT EXISTS over an existing column: nothing changes
    type_node, typname = definition.typeName, str(definition.typeName.names[-1].sval).lower()
    if typname in _SERIALS:
        typname = _SERIALS[typname]
        type_node = ast.TypeName(names=(ast.String("pg_catalog"), ast.String(typname)))
    default, unknown = None, None
    for con in definition.constraints or ():
        if con.contype == ConstrType.CONSTR_DEFAULT:
            default = con.raw_expr
        elif con.contype == ConstrType.CONSTR_IDENTITY:
            unknown = f"{name} of {rel.table} is an identity column added at {where}"
        elif con.contype == ConstrType.CONSTR_GENERATED:
            unknown = f"{name} of {rel.table} is generated from the row, added at {where}"
    if typname != str(definition.typeName.names[-1].sval).lower():
        unknown = f"{name} of {rel.table} is filled from a sequence, added at {where}"
    elif default is not None and _calls(default, "nextval"):
        unknown = f"{name} of {rel.table} gets a sequence's next value, added at {where}"
    value = _null() if default is None or unknown else default
    rel.query = rel.query if rel.query is not None else _base(rel)  # before the column exists
    rel.columns.append(Column(name, typname, type_node, default, unknown, unknown))
    _wrap(rel, where, {name: _cast(value, type_node)})


def alter_type(rel: Relation, cmd: Any, where: str) -> None:
    """`ALTER COLUMN c TYPE t [USING e]`: the column becomes ``CAST(e AS t)``."""
    col = rel.column(cmd.name)
    if col is None:
        return
    target = cmd.def_.typeName
    using = cmd.def_.raw_default if cmd.def_.raw_default is not None else _col(cmd.name)
    if _has(using, ast.SubLink):
        unknown = f"column {cmd.name} of {rel.table} changes type at {where} with a subquery"
        rel.columns[rel.columns.index(col)] = replace(col, unknown=unknown)
        return
    _wrap(rel, where, {col.name: _cast(using, target)})
    typname = str(target.names[-1].sval).lower()
    rel.columns[rel.columns.index(col)] = replace(col, type=typname, cast=target)


def drop_column(rel: Relation, name: str) -> None:
    col = rel.column(name)
    if col is not None:
        if rel.query is None:
            rel.query = _base(rel)
        index = rel.columns.index(col)
        del rel.columns[index]
        targets = list(rel.query.targetList)
        del targets[index + (1 if rel.carry_ctid else 0)]
        rel.query.targetList = tuple(targets)


def set_default(rel: Relation, cmd: Any, where: str) -> None:
    """`SET DEFAULT` / `DROP DEFAULT`: what rows inserted later get; no row changes."""
    col = rel.column(cmd.name)
    if col is None:
        return
    default, unknown = cmd.def_, None
    if default is not None and _calls(default, "nextval"):
        unknown = f"rows inserted into {rel.table} get a sequence's next value, set at {where}"
    rel.columns[rel.columns.index(col)] = replace(col, default=default, default_unknown=unknown)


#: The ALTER TABLE subcommands whose effect on the rows alter_command derives.
ALTERING = frozenset(
    {
        AlterTableType.AT_AddColumn,
        AlterTableType.AT_AlterColumnType,
        AlterTableType.AT_DropColumn,
        AlterTableType.AT_ColumnDefault,
    }
)


def alter_command(rel: Relation, cmd: Any, where: str) -> None:
    """One `ALTER TABLE` subcommand's effect on the derived state."""
    sub = cmd.subtype
    if sub == AlterTableType.AT_AddColumn:
        add_column(rel, cmd.def_, where)
    elif sub == AlterTableType.AT_AlterColumnType:
        alter_type(rel, cmd, where)
    elif sub == AlterTableType.AT_DropColumn:
        drop_column(rel, cmd.name)
    elif sub == AlterTableType.AT_ColumnDefault:
        set_default(rel, cmd, where)


def update(rel: Relation, stmt: Any, where: str) -> None:
    """`UPDATE t SET c = e [WHERE w]`: ``CASE WHEN w THEN e ELSE c END`` per column set."""
    why = _update_unknown(stmt)
    if why is not None:
        _block(rel, f"rows of {rel.table} are updated at {where} {why}")
        return
    alias = stmt.relation.alias.aliasname if stmt.relation.alias else ""
    values: dict[str, Any] = {}
    for target in stmt.targetList:
        col = rel.column(target.name)
        if col is None:
            _block(rel, f"rows of {rel.table} are updated at {where}: no column {target.name}")
            return
        if isinstance(target.val, ast.SetToDefault):
            if col.default_unknown is not None:
                values[col.name] = _cast(_null(), col.cast)
                rel.columns[rel.columns.index(col)] = replace(col, unknown=col.default_unknown)
                continue
            new = _cast(col.default if col.default is not None else _null(), col.cast)
        else:
            new = _cast(target.val, col.cast)
        if stmt.whereClause is not None:
            new = ast.CaseExpr(
                args=(ast.CaseWhen(expr=stmt.whereClause, result=new),), defresult=_col(col.name)
            )
        values[col.name] = new
    _wrap(rel, where, values, alias=alias)


def _update_unknown(stmt: Any) -> str | None:
    if stmt.fromClause:
        return "with FROM (the new values come from other tables)"
    if stmt.withClause is not None:
        return "with WITH"
    if _has(stmt.whereClause, ast.SubLink, ast.CurrentOfExpr) or any(
        _has(t.val, ast.SubLink, ast.MultiAssignRef) for t in stmt.targetList
    ):
        return "with a subquery, a multi-column assignment or WHERE CURRENT OF"
    if any(t.indirection for t in stmt.targetList):
        return "into a part of a column (an array element or a field)"
    return None


def delete(rel: Relation, stmt: Any, where: str) -> None:
    """`DELETE FROM t [WHERE w]`: the rows where ``w`` is not true stay."""
    if stmt.usingClause or stmt.withClause is not None or _has(stmt.whereClause, ast.SubLink):
        _block(rel, f"rows of {rel.table} are deleted at {where} with USING, WITH or a subquery")
        return
    if _has(stmt.whereClause, ast.CurrentOfExpr):
        _block(rel, f"rows of {rel.table} are deleted at {where} WHERE CURRENT OF")
        return
    alias = stmt.relation.alias.aliasname if stmt.relation.alias else ""
    keep = (
        ast.A_Const(val=ast.Boolean(False))
        if stmt.whereClause is None
        else ast.BooleanTest(arg=stmt.whereClause, booltesttype=BoolTestType.IS_NOT_TRUE)
    )
    _wrap(rel, where, {}, where=keep, alias=alias)


def truncate(rel: Relation, at: str) -> None:
    _wrap(rel, at, {}, where=ast.A_Const(val=ast.Boolean(False)))


def truncate_cascades(stmt: Any) -> bool:
    return bool(stmt.behavior == DropBehavior.DROP_CASCADE)


def insert(rel: Relation, stmt: Any, where: str) -> None:
    """`INSERT INTO t [(cols)] VALUES ...`: the table's rows UNION ALL the literal rows."""
    select = stmt.selectStmt
    why = None
    if select is None or not select.valuesLists:
        why = "from a query (INSERT ... SELECT or DEFAULT VALUES)"
    elif stmt.onConflictClause is not None or stmt.withClause is not None:
        why = "with ON CONFLICT or WITH"
    elif any(_has(v, ast.SubLink) for row in select.valuesLists for v in row):
        why = "with a subquery among the values"
    names = [t.name for t in stmt.cols or ()] or [c.name for c in rel.columns]
    if why is None and any(t.indirection for t in stmt.cols or ()):
        why = "into a part of a column"
    if why is None and any(rel.column(n) is None for n in names):
        why = "into a column pgshift does not know"
    if why is not None:
        _block(rel, f"rows are inserted into {rel.table} at {where} {why}")
        return
    _union_values(rel, names[: len(select.valuesLists[0])], select.valuesLists, where)


def _union_values(rel: Relation, names: Sequence[str], rows: Sequence[Any], where: str) -> None:
    by_name = {c.name: c for c in rel.columns}
    literal_rows = []
    for row in rows:
        cells = []
        for name, given in zip(names, row, strict=False):
            col = by_name[name]
            value = given
            if isinstance(given, ast.SetToDefault):
                value = col.default if col.default is not None else _null()
                if col.default_unknown is not None:
                    _mark(rel, name, f"{col.default_unknown} (at {where})")
            cells.append(_cast(value, col.cast))
        literal_rows.append(tuple(cells))
    values = ast.RangeSubselect(
        lateral=False,
        subquery=ast.SelectStmt(valuesLists=tuple(literal_rows)),
        alias=ast.Alias(aliasname=VALUES_ALIAS, colnames=tuple(ast.String(n) for n in names)),
    )
    targets = [_target(_null(), "ctid")] if rel.carry_ctid else []
    for col in list(rel.columns):
        if col.name in names:
            value = _col(VALUES_ALIAS, col.name)
        elif col.default_unknown is not None:
            value = _cast(_null(), col.cast)
            _mark(rel, col.name, f"{col.default_unknown} (at {where})")
        else:
            value = _cast(col.default if col.default is not None else _null(), col.cast)
        targets.append(_target(value, col.name))
    previous = rel.query if rel.query is not None else _base(rel)
    rel.query = ast.SelectStmt(
        op=SetOperation.SETOP_UNION,
        all=True,
        larg=previous,
        rarg=ast.SelectStmt(targetList=tuple(targets), fromClause=(values,)),
    )
    rel.changed_at.append(where)


@dataclass
class States:
    """The relations the walk has derived so far, found by table."""

    relations: list[Relation] = field(default_factory=list)

    def get(self, table: TableRef) -> Relation | None:
        return next((r for r in self.relations if r.table.same(table)), None)


def shown(rel: Relation) -> str:
    """The state's query as SQL, for tests and messages."""
    return _deparse(rel.query if rel.query is not None else _base(rel))
