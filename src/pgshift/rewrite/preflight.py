"""The pre-flight checks a pending statement implies, derived from its parse tree as pure values.

Why it exists: a `SET NOT NULL` over a column that still has NULLs, a unique index over
duplicates, a foreign key over orphans or a cast over one bad value fail on the data, after the
backup and under the lock. Each such statement implies a read-only query for its violators;
this module derives that query from the statement's own parse tree (pglast, the PostgreSQL
parser), so the user's expressions (a CHECK, a partial index's WHERE, a USING cast) are
reused as the server parsed them, and every identifier is quoted by pglast's deparser, never
pasted by hand. Nothing here talks to a database: the facts a check needs (primary keys,
column types, sizes, constraint definitions) come in as a `Facts` value read by db/preflight.py,
which also runs the queries. Unit tests build everything from SQL literals.

Every query returns rows of (example text, occurrences bigint, total bigint): up to five
violators named by key (the primary key when the table has one, else ``ctid``), and how many
violators there are, counted up to ``CAP`` so that a failure is found without reading the whole
table (the count is then "at least").
"""

from __future__ import annotations

import functools
import json
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pglast import ast, parse_sql
from pglast.enums import (
    A_Expr_Kind,
    AlterTableType,
    BoolExprType,
    CoercionForm,
    ConstrType,
    NullTestType,
    ObjectType,
)
from pglast.parser import ParseError, parse_sql_json
from pglast.stream import RawStream
from pglast.visitors import Visitor

from pgshift.rewrite import preflight_state as derived
from pgshift.rewrite.preflight_head import READ_KINDS, Head, head_of
from pgshift.rewrite.preflight_light import (
    CHECK,
    EMPTY_TABLE,
    EXPECTED_DURATION,
    FAIL,
    FOREIGN_KEY,
    NOT_CHECKED,
    NOT_NULL,
    PASS,
    TYPE_CHANGE,
    UNIQUE,
    WARN,
    PreflightResult,
)
from pgshift.rewrite.preflight_state import Relation, States, relation_of

#: A check stops after this many violators: enough to say "at least N", found fast.
CAP = 1000
#: Violators a result names.
EXAMPLES = 5
#: The factor over @estimated-duration at which an expected duration is a warning.
OVER_ESTIMATE = 3

_TEXT_TYPES = frozenset({"text", "varchar", "bpchar", "name", "citext", "char"})
_NUMERIC_TYPES = frozenset({"int2", "int4", "int8", "numeric", "float4", "float8"})
_INT_RANGES = {
    "int2": (-32768, 32767),
    "int4": (-2147483648, 2147483647),
    "int8": (-9223372036854775808, 9223372036854775807),
}
_LENGTH_TYPES = frozenset({"varchar", "bpchar"})


# -- values -----------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class TableRef:
    """A table as a statement writes it: the schema when given, the name as the parser folded it."""

    schema: str | None
    name: str

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name

    def same(self, other: TableRef) -> bool:
        """Same table, reading a missing schema as "whatever search_path finds"."""
        if self.name != other.name:
            return False
        return self.schema is None or other.schema is None or self.schema == other.schema


@dataclass(frozen=True)
class TableFacts:
    """What the target's catalog says about one table, as far as the checks need it."""

    key: tuple[str, ...] = ()  # primary key columns, in key order; () without one
    columns: tuple[tuple[str, str], ...] = ()  # (column, type name as pg_type.typname)
    bytes: int = 0  # pg_relation_size, summed over partitions
    rows: float = 0.0  # reltuples, summed over partitions (an estimate)
    constraints: tuple[tuple[str, str], ...] = ()  # (name, pg_get_constraintdef)
    # (column, format_type with its typmod): the type as SQL, for casts of derived values
    formatted: tuple[tuple[str, str], ...] = ()
    # (column, "default" | "identity" | "generated", pg_get_expr of the default or "")
    defaults: tuple[tuple[str, str, str], ...] = ()

    def type_of(self, column: str) -> str | None:
        return next((t for c, t in self.columns if c == column), None)

    def type_text(self, column: str) -> str | None:
        return next((t for c, t in self.formatted if c == column), None)

    def constraint(self, name: str) -> str | None:
        return next((d for n, d in self.constraints if n == name), None)


@dataclass(frozen=True)
class Facts:
    """The target's answers the checks depend on: its major version and the tables' facts.

    A table missing from ``tables`` does not exist on the target.
    """

    server_major: int
    tables: tuple[tuple[TableRef, TableFacts], ...] = ()

    def plus(self, other: Facts) -> Facts:
        """These facts and ``other``'s tables (read in a second round)."""
        return Facts(self.server_major, self.tables + other.tables)

    def table(self, ref: TableRef) -> TableFacts | None:
        exact = next((f for r, f in self.tables if r == ref), None)
        return exact or next((f for r, f in self.tables if r.same(ref)), None)


@dataclass(frozen=True)
class Pending:
    """One pending statement with where it comes from."""

    file: str
    line: int
    sql: str
    migration: str = ""  # the migration's name, for durations summed per migration
    estimated_ms: int | None = None  # the migration's @estimated-duration
    # What the loader already knows of the statement (model.Statement): its kind, "" when
    # unknown, and its libpg_query JSON tree when the loader kept one.
    kind: str = field(default="", compare=False)
    tree: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)
    # The loader's cut of a statement read only for its table (rewrite/preflight_head.py).
    head: Head | None = field(default=None, compare=False, repr=False)

    @functools.cached_property
    def trees(self) -> list[Any]:
        """The statement's parse trees as far as the four passes read them (the tables needed,
        the tables referenced, the checks, the durations), built once.

        Building pglast's Python tree of a statement costs about 0.3 ms, most of an `up` of
        1,000 new tables' pre-flight (0.9 s). So a statement of a kind no pass reads is not
        parsed at all (the loader's kind says so), and the kinds the passes read only for
        their table (CREATE TABLE, a plain CREATE INDEX, INSERT, UPDATE, DELETE, MERGE) get a
        small tree holding just what the passes read, from the loader's JSON tree or a JSON
        parse (a tenth of the cost), or from the head the loader cut (and the statements memo
        kept) without any parse. The rest are parsed in full.
        """
        if self.kind and self.kind not in READ_KINDS:
            return []
        if self.head is not None and self.kind:  # the loader's cut: no parse at all
            return [_from_head(self.kind, self.head)]
        raws = [self.tree] if self.tree is not None else _parse_json(self.sql)
        out: list[Any] = []
        for raw in raws:
            ((kind, node),) = raw.items()
            if kind not in READ_KINDS:
                continue
            head = head_of(kind, node)
            if head is None:
                return _parse(self.sql)
            out.append(_from_head(kind, head))
        return out

    @functools.cached_property
    def full_trees(self) -> list[Any]:
        """The statement's whole parse trees, for a pass that reads more than ``trees`` keeps."""
        return _parse(self.sql)


@dataclass(frozen=True)
class PreflightCheck:
    """The read-only check a statement implies, or why it has none that can run now.

    ``sql`` is a complete SELECT (deparsed by pglast) returning (example, occurrences, total);
    it is None when ``not_checked`` says why the statement cannot be checked before it runs.
    """

    kind: str
    file: str
    line: int
    action: str  # what the statement does, e.g. "SET NOT NULL on orders.region"
    table: TableRef
    columns: tuple[str, ...]
    sql: str | None
    unit: str  # what the count counts: "rows" or "keys"
    violation: str  # what the counted things do, e.g. "have NULL in region"
    key: tuple[str, ...] = ()  # what names the examples: ("id",), ("a", "b") or ("ctid",)
    not_checked: str | None = None
    migration: str = ""
    derived_from: str = ""  # the earlier pending statements whose rows the check reads


# -- pending statements -----------------------------------------------------------------------


def _parse(sql: str) -> list[Any]:
    try:
        return [raw.stmt for raw in parse_sql(sql)]
    except ParseError:
        return []  # a file that does not parse never runs; validate reports it


def _parse_json(sql: str) -> list[Mapping[str, Any]]:
    """The statements of ``sql`` as libpg_query's JSON trees (``{"Kind": {...}}`` each)."""
    try:
        raws = json.loads(parse_sql_json(sql)).get("stmts", [])
    except ParseError:
        return []  # a file that does not parse never runs; validate reports it
    return [raw.get("stmt") or {} for raw in raws]


def _from_head(kind: str, head: Head) -> Any:
    """The small pglast tree of a statement read only for its table (see Pending.trees)."""
    schema, name, inh, persistence, flag = head
    relation = _node(
        ast.RangeVar, schemaname=schema, relname=name, inh=inh, relpersistence=persistence
    )
    if kind == "CreateStmt":
        return _node(ast.CreateStmt, relation=relation, if_not_exists=flag)
    if kind == "IndexStmt":
        return _node(ast.IndexStmt, relation=relation, unique=False)
    return _node(getattr(ast, kind), relation=relation)  # a row change (ROW_CHANGERS)


def _node(cls: type[Any], **values: Any) -> Any:
    """``cls(**values)`` without pglast's per-attribute validation, for values that came from
    the parser itself (a str, a bool, a node built here): the same node, built in a fifth of
    the time (the validating constructor was most of pre-flight over 1,000 new tables;
    tests/unit/test_preflight.py compares both)."""
    node = object.__new__(cls)
    for attribute in node:  # a pglast node iterates over its attribute names
        object.__setattr__(node, attribute, values.get(attribute))
    return node


def _table(rangevar: Any) -> TableRef:
    return TableRef(rangevar.schemaname or None, rangevar.relname)


def tables_needed(pending: Sequence[Pending]) -> list[TableRef]:
    """Every table a check or a duration of ``pending`` reads facts of, in first-seen order.

    A table an earlier pending statement creates (without IF NOT EXISTS) cannot be on the
    target yet: its facts are not asked for (a long plan of new tables asked once per table).
    """
    seen: dict[TableRef, None] = {}
    created: set[TableRef] = set()
    for item in pending:
        for stmt in item.trees:
            if isinstance(stmt, ast.CreateStmt) and not stmt.if_not_exists:
                created.add(_table(stmt.relation))
            elif isinstance(
                stmt, (ast.AlterTableStmt, ast.IndexStmt, ast.VacuumStmt, ast.ClusterStmt)
            ):
                for rangevar in _rangevars(stmt):
                    if _table(rangevar) not in created:
                        seen.setdefault(_table(rangevar), None)
    return list(seen)


def _rangevars(root: Any) -> Iterator[Any]:
    """Every RangeVar of a tree, breadth first in the order pglast's Visitor meets them.

    Not a Visitor: each call of one inspects its class for visit methods (~40 us), which was
    a third of pre-flight on a plan of 1,000 new tables.
    """
    todo: deque[Any] = deque([root])
    while todo:
        item = todo.popleft()
        for sub in item if isinstance(item, tuple) else (item,):
            if isinstance(sub, ast.Node):
                if isinstance(sub, ast.RangeVar):
                    yield sub
                for member in sub:
                    value = getattr(sub, member)
                    if isinstance(value, (tuple, ast.Node)):
                        todo.append(value)
            elif isinstance(sub, tuple):
                todo.extend(v for v in sub if isinstance(v, (tuple, ast.Node)))


def referenced_tables(pending: Sequence[Pending], facts: Facts) -> list[TableRef]:
    """Tables the facts lead to and no statement names: the referenced table of a foreign key
    that a VALIDATE CONSTRAINT validates, known only from the target's catalog."""
    out: dict[TableRef, None] = {}
    for item in pending:
        for stmt in item.trees:
            if not isinstance(stmt, ast.AlterTableStmt):
                continue
            table = facts.table(_table(stmt.relation))
            for cmd in stmt.cmds or ():
                definition = table.constraint(str(cmd.name)) if table is not None else None
                con = _constraint_of(definition) if definition is not None else None
                if (
                    cmd.subtype == AlterTableType.AT_ValidateConstraint
                    and con is not None
                    and con.pktable is not None
                    and facts.table(_table(con.pktable)) is None
                ):
                    out.setdefault(_table(con.pktable), None)
    return list(out)


# -- composing queries on parse trees ---------------------------------------------------------

_SLOT = "pgshift_slot_"


class _Fill(Visitor):
    """Replaces the template's slot columns and tables by the given nodes.

    pglast's visitor does not descend into a replacement, so a user's column that happens to
    carry a slot's name is never replaced.
    """

    def __init__(self, parts: Mapping[str, Any]) -> None:
        super().__init__()
        self.parts = parts

    def visit_ColumnRef(self, _ancestors: Any, node: Any) -> Any:
        fields = node.fields
        if len(fields) == 1 and isinstance(fields[0], ast.String):
            return self.parts.get(str(fields[0].sval))
        return None

    def visit_RangeVar(self, _ancestors: Any, node: Any) -> Any:
        return None if node.schemaname else self.parts.get(node.relname)


def _fill(template: str, **parts: Any) -> Any:
    """The statement of ``template`` with its ``pgshift_slot_<name>`` slots replaced."""
    tree: Any = parse_sql(template)[0].stmt
    _Fill({_SLOT + k: v for k, v in parts.items()})(tree)
    return tree


def _expr(template: str, **parts: Any) -> Any:
    """One expression from a template (``template`` is what follows SELECT)."""
    return _fill("SELECT " + template, **parts).targetList[0].val


def _deparse(node: Any) -> str:
    return str(RawStream()(node))


def _col(*names: str) -> Any:
    return ast.ColumnRef(fields=tuple(ast.String(n) for n in names))


def _bool(op: BoolExprType, args: Sequence[Any]) -> Any:
    if len(args) == 1 and op != BoolExprType.NOT_EXPR:
        return args[0]
    return ast.BoolExpr(boolop=op, args=tuple(args))


def _and(args: Sequence[Any]) -> Any:
    return _bool(BoolExprType.AND_EXPR, args) if args else ast.A_Const(val=ast.Boolean(True))


def _null(expr: Any, *, is_null: bool) -> Any:
    kind = NullTestType.IS_NULL if is_null else NullTestType.IS_NOT_NULL
    return ast.NullTest(arg=expr, nulltesttype=kind)


def _key_expr(key: Sequence[str], alias: str | None = None) -> Any:
    cols = [_col(alias, k) if alias else _col(k) for k in key]
    if len(cols) == 1:
        return cols[0]
    return ast.RowExpr(args=tuple(cols), row_format=CoercionForm.COERCE_EXPLICIT_CALL)


def _aliased(rangevar: Any, alias: str) -> Any:
    return ast.RangeVar(
        schemaname=rangevar.schemaname,
        relname=rangevar.relname,
        inh=rangevar.inh,
        relpersistence="p",
        alias=ast.Alias(aliasname=alias),
    )


def violators_sql(
    rangevar: Any, predicate: Any, key: Sequence[str], alias: str | None = None
) -> str:
    """Up to EXAMPLES rows of ``rangevar`` matching ``predicate``, named by ``key``, and their
    count up to CAP: one scan that stops at the CAP-th violator."""
    table = _aliased(rangevar, alias) if alias and isinstance(rangevar, ast.RangeVar) else rangevar
    return _deparse(
        _fill(
            f"SELECT example::text, 1::bigint, count(*) OVER ()"
            f" FROM (SELECT {_SLOT}key AS example FROM {_SLOT}table WHERE {_SLOT}pred"
            f" LIMIT {CAP}) AS violators LIMIT {EXAMPLES}",
            key=_key_expr(key, alias),
            table=table,
            pred=predicate,
        )
    )


def duplicates_sql(rangevar: Any, keys: Sequence[Any], predicate: Any) -> str:
    """Up to EXAMPLES key values of ``rangevar`` held by more than one row (among the rows
    matching ``predicate``), with how often, and how many such values, up to CAP.

    The grouping is a MATERIALIZED CTE, planned for all its rows: with the LIMIT over it
    directly, the planner chose a parallel sort and a GroupAggregate for their quicker first
    row, and a check with no duplicate cost 1.3x the plain GROUP BY's hash aggregate on a
    million rows (bench/bench_preflight.py). Grouping reads every row either way.
    """
    group = (
        keys[0]
        if len(keys) == 1
        else ast.RowExpr(args=tuple(keys), row_format=CoercionForm.COERCE_EXPLICIT_CALL)
    )
    return _deparse(
        _fill(
            f"WITH duplicates AS MATERIALIZED"
            f" (SELECT {_SLOT}key AS example, count(*) AS n FROM {_SLOT}table"
            f" WHERE {_SLOT}pred GROUP BY 1 HAVING count(*) > 1)"
            f" SELECT example::text, n, count(*) OVER ()"
            f" FROM (SELECT example, n FROM duplicates LIMIT {CAP}) AS capped"
            f" LIMIT {EXAMPLES}",
            key=group,
            table=rangevar,
            pred=predicate,
        )
    )


# -- what earlier pending statements did ------------------------------------------------------


@dataclass
class _State:
    """What the pending statements before the current one create or change (one walk's state).

    ``relations`` holds, per table an earlier statement changed, the rows it will have, as a
    query derived on the parse trees (rewrite/preflight_state.py), or why they cannot be.
    """

    facts: Facts
    created: list[tuple[TableRef, str]] = field(default_factory=list)
    # The tables of ``created``, exactly as written: a set, so a row change of a new table
    # is told apart in O(1) (a list scan per INSERT made a plan of 1,000 new tables O(n^2)).
    created_tables: set[TableRef] = field(default_factory=set)
    relations: States = field(default_factory=States)
    opaque: str | None = None
    not_valid: list[tuple[TableRef, str, Any]] = field(default_factory=list)

    def relation(self, table: TableRef, what: str) -> Relation:
        """The derived state of ``table``, started from the target's facts on first change."""
        rel = self.relations.get(table)
        if rel is None:
            facts = self.facts.table(table)
            if facts is None:
                rel = Relation(table, [], carry_ctid=True, blocked=f"{what}, on no known table")
            else:
                rel = relation_of(table, facts)
            self.relations.relations.append(rel)
        return rel

    def blocker(self, tables: Sequence[TableRef], columns: Sequence[str]) -> str | None:
        """Why a check on ``tables`` (``columns`` of the first) cannot be run before the run."""
        for ref in tables:
            for seen, where in self.created:
                if seen.same(ref):
                    return f"table {ref} is created by an earlier pending statement ({where})"
        if self.opaque:
            return f"an earlier pending statement may change any data ({self.opaque})"
        for number, ref in enumerate(tables):
            rel = self.relations.get(ref)
            read = columns if number == 0 else [c.name for c in rel.columns] if rel else []
            reason = rel.unknown(read) if rel is not None else None
            if reason is not None:
                return f"{reason}: the check would read data pgshift cannot derive before the run"
        return None

    def constraint(self, table: TableRef, name: str) -> Any:
        return next((c for t, n, c in self.not_valid if t.same(table) and n == name), None)


def _where(item: Pending) -> str:
    return f"{item.file}:{item.line}"


_OPAQUE = ("DoStmt", "CallStmt", "SelectStmt", "ExecuteStmt")


def _created(stmt: Any) -> TableRef | None:
    if isinstance(stmt, ast.CreateStmt):
        return _table(stmt.relation)
    if isinstance(stmt, ast.CreateTableAsStmt):
        return _table(stmt.into.rel)  # type: ignore[union-attr]
    if isinstance(stmt, ast.SelectStmt) and stmt.intoClause is not None:
        return _table(stmt.intoClause.rel)
    return None


def _blocked_by(stmt: Any) -> list[tuple[TableRef, str]]:
    """The tables whose rows ``stmt`` changes in a way not derived (or renames or drops)."""
    if isinstance(stmt, ast.MergeStmt):
        return [(_table(stmt.relation), f"rows of {_table(stmt.relation)} are merged into")]
    if isinstance(stmt, ast.CopyStmt) and stmt.is_from and stmt.relation is not None:
        return [(_table(stmt.relation), f"rows are copied into {_table(stmt.relation)}")]
    if isinstance(stmt, ast.RenameStmt) and stmt.relation is not None:
        return [(_table(stmt.relation), f"{_table(stmt.relation)} or a column of it is renamed")]
    if isinstance(stmt, ast.DropStmt) and stmt.removeType == ObjectType.OBJECT_TABLE:
        out = []
        for names in stmt.objects or ():
            parts = [str(s.sval) for s in names]
            ref = TableRef(parts[-2] if len(parts) > 1 else None, parts[-1])
            out.append((ref, f"{ref} is dropped"))
        return out
    return []


def _record(item: Pending, stmt: Any, state: _State) -> None:
    """Remember what ``stmt`` creates or changes, for the checks of the statements after it."""
    kind, where = type(stmt).__name__, _where(item)
    created = _created(stmt)
    if created is not None:
        state.created.append((created, where))
        state.created_tables.add(created)
    elif kind in _OPAQUE:
        state.opaque = f"{kind.removesuffix('Stmt').upper()} at {where}"
    elif kind in _DERIVED_CHANGES:
        _record_rows(item, stmt, where, state)
    elif isinstance(stmt, ast.TruncateStmt):
        if derived.truncate_cascades(stmt):
            state.opaque = f"TRUNCATE ... CASCADE at {where}"
        for rv in stmt.relations or ():
            derived.truncate(state.relation(_table(rv), "truncated"), where)
    for ref, what in _blocked_by(stmt):
        state.relation(ref, what).blocked = f"{what} at {where}"


#: Row changes whose result is derived as a state of their table (preflight_state.py).
_DERIVED_CHANGES = frozenset({"UpdateStmt", "DeleteStmt", "InsertStmt"})


def _record_rows(item: Pending, stmt: Any, where: str, state: _State) -> None:
    """The rows an UPDATE, DELETE or INSERT leaves, as a derived state of its table; none
    for a table an earlier pending statement creates (nothing of it is derived)."""
    table = _table(stmt.relation)
    if table in state.created_tables:
        return
    stmt = _whole(item, stmt)
    if isinstance(stmt, ast.UpdateStmt):
        derived.update(state.relation(table, "updated"), stmt, where)
    elif isinstance(stmt, ast.DeleteStmt):
        derived.delete(state.relation(table, "deleted from"), stmt, where)
    elif isinstance(stmt, ast.InsertStmt):
        derived.insert(state.relation(table, "inserted into"), stmt, where)


def _whole(item: Pending, stmt: Any) -> Any:
    """``stmt``'s whole tree: ``item.trees`` keeps only the target table of a row change
    (Pending.trees), the derived state needs all of it. The n-th row change of a kind among
    the light trees is the n-th of that kind among the whole ones."""
    kind = type(stmt)
    nth = [t for t in item.trees if type(t) is kind].index(stmt)
    return [t for t in item.full_trees if type(t) is kind][nth]


def _record_command(item: Pending, table: TableRef, cmd: Any, state: _State) -> None:
    where = _where(item)
    if cmd.subtype in derived.ALTERING:
        derived.alter_command(state.relation(table, "altered"), cmd, where)
    elif (
        cmd.subtype == AlterTableType.AT_AddConstraint
        and isinstance(cmd.def_, ast.Constraint)
        and cmd.def_.skip_validation
        and cmd.def_.conname
    ):
        state.not_valid.append((table, cmd.def_.conname, cmd.def_))


# -- deriving the checks ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    """One statement's place and the facts, handed to every deriving function."""

    item: Pending
    facts: Facts
    state: _State
    used: list[Relation] = field(default_factory=list)  # derived states read by its checks

    def check(
        self, kind: str, table: TableRef, columns: Sequence[str], **fields: Any
    ) -> PreflightCheck:
        changed = [at for rel in self.used for at in rel.changed_at]
        return PreflightCheck(
            kind=kind,
            file=self.item.file,
            line=self.item.line,
            table=table,
            columns=tuple(columns),
            migration=self.item.migration,
            derived_from=", ".join(dict.fromkeys(changed)),
            **fields,
        )

    def source(self, rangevar: Any, alias: str | None = None) -> Any:
        """The FROM item a check reads ``rangevar``'s rows from: the table itself, or the rows
        the earlier pending statements leave, derived (rewrite/preflight_state.py)."""
        rel = self.state.relations.get(_table(rangevar))
        if rel is not None and rel.query is not None:
            self.used.append(rel)
            return rel.source(alias)
        return _aliased(rangevar, alias) if alias else rangevar

    def type_of(self, table: TableRef, column: str) -> str | None:
        rel = self.state.relations.get(table)
        if rel is not None and rel.blocked is None:
            col = rel.column(column)
            return col.type if col is not None else None
        facts = self.facts.table(table)
        return facts.type_of(column) if facts is not None else None

    def key(self, table: TableRef) -> tuple[str, ...]:
        facts = self.facts.table(table)
        return facts.key if facts is not None and facts.key else ("ctid",)

    def blocker(self, tables: Sequence[TableRef], columns: Sequence[str]) -> str | None:
        """Why nothing can be checked now: an earlier statement, or a table or column missing."""
        reason = self.state.blocker(tables, columns)
        if reason is not None:
            return reason
        for ref in tables:
            if self.facts.table(ref) is None:
                return f"table {ref} does not exist on the target"
        missing = [c for c in columns if self.type_of(tables[0], c) is None]
        if missing:
            return f"column {missing[0]} does not exist in {tables[0]} on the target"
        return None


def derive_checks(pending: Sequence[Pending], facts: Facts) -> list[PreflightCheck]:
    """The check of every pending statement whose success depends on the data, in order.

    The statements are walked in order, so a check that depends on what an earlier pending
    statement creates or changes (a table created, a column added, rows updated) is returned
    as not checked, with the reason, instead of being run on a state it will not meet.
    """
    state = _State(facts)
    out: list[PreflightCheck] = []
    for item in pending:
        for stmt in item.trees:
            ctx = _Context(item, facts, state)
            if isinstance(stmt, ast.AlterTableStmt):
                out += _alter_table(ctx, stmt)
            elif isinstance(stmt, ast.IndexStmt) and stmt.unique:
                out += _unique_index(ctx, stmt)
            _record(item, stmt, state)
    return out


def _alter_table(ctx: _Context, stmt: Any) -> list[PreflightCheck]:
    if stmt.objtype != ObjectType.OBJECT_TABLE:
        return []
    table = _table(stmt.relation)
    out: list[PreflightCheck] = []
    for cmd in stmt.cmds or ():
        derive = _COMMANDS.get(cmd.subtype)
        if derive is not None:
            out += derive(ctx, stmt.relation, cmd)
        _record_command(ctx.item, table, cmd, ctx.state)
    return out


def _not_checked(
    ctx: _Context, kind: str, action: str, table: TableRef, reason: str
) -> PreflightCheck:
    return ctx.check(
        kind, table, (), action=action, sql=None, unit="rows", violation="", not_checked=reason
    )


def _null_rows(ctx: _Context, rangevar: Any, columns: Sequence[str], action: str) -> PreflightCheck:
    table = _table(rangevar)
    reason = ctx.blocker([table], columns)
    if reason is not None:
        return _not_checked(ctx, NOT_NULL, action, table, reason)
    key = ctx.key(table)
    pred = _bool(BoolExprType.OR_EXPR, [_null(_col(c), is_null=True) for c in columns])
    return ctx.check(
        NOT_NULL,
        table,
        columns,
        action=action,
        key=key,
        unit="rows",
        violation=f"have NULL in {', '.join(columns)}",
        sql=violators_sql(ctx.source(rangevar), pred, key),
    )


def _set_not_null(ctx: _Context, rangevar: Any, cmd: Any) -> list[PreflightCheck]:
    action = f"SET NOT NULL on {_table(rangevar)}.{cmd.name}"
    return [_null_rows(ctx, rangevar, [cmd.name], action)]


def _has_default(column: Any) -> bool:
    """Whether an added column gets a value in existing rows (a default, identity, generated)."""
    if column.typeName is not None and column.typeName.names[-1].sval in (
        "serial",
        "bigserial",
        "smallserial",
        "serial2",
        "serial4",
        "serial8",
    ):
        return True
    for con in column.constraints or ():
        if con.contype in (ConstrType.CONSTR_IDENTITY, ConstrType.CONSTR_GENERATED):
            return True
        if con.contype == ConstrType.CONSTR_DEFAULT:
            value = con.raw_expr
            return not (isinstance(value, ast.A_Const) and value.isnull)
    return False


def _add_column(ctx: _Context, rangevar: Any, cmd: Any) -> list[PreflightCheck]:
    column = cmd.def_
    not_null = column.is_not_null or any(
        c.contype in (ConstrType.CONSTR_NOTNULL, ConstrType.CONSTR_PRIMARY)
        for c in column.constraints or ()
    )
    if not not_null or _has_default(column):
        return []
    table = _table(rangevar)
    action = f"ADD COLUMN {column.colname} NOT NULL without a default on {table}"
    reason = ctx.blocker([table], [])
    if reason is not None:
        return [_not_checked(ctx, EMPTY_TABLE, action, table, reason)]
    key = ctx.key(table)
    return [
        ctx.check(
            EMPTY_TABLE,
            table,
            (column.colname,),
            action=action,
            key=key,
            unit="rows",
            violation="exist (each would get NULL)",
            sql=violators_sql(ctx.source(rangevar), _and([]), key),
        )
    ]


def _add_constraint(ctx: _Context, rangevar: Any, cmd: Any) -> list[PreflightCheck]:
    con = cmd.def_
    if not isinstance(con, ast.Constraint):
        return []
    return _constraint_checks(ctx, rangevar, con, validating=False)


def _constraint_checks(
    ctx: _Context, rangevar: Any, con: Any, *, validating: bool
) -> list[PreflightCheck]:
    enforced = con.is_enforced or con.contype not in (
        ConstrType.CONSTR_CHECK,
        ConstrType.CONSTR_FOREIGN,
    )
    if (con.skip_validation and not validating) or not enforced:
        return []  # NOT VALID or NOT ENFORCED: nothing is read
    table = _table(rangevar)
    if con.contype == ConstrType.CONSTR_CHECK:
        return [_check_violators(ctx, rangevar, con, validating)]
    if con.contype == ConstrType.CONSTR_FOREIGN:
        return [_orphans(ctx, rangevar, con, validating)]
    if con.contype in (ConstrType.CONSTR_PRIMARY, ConstrType.CONSTR_UNIQUE):
        what = "PRIMARY KEY" if con.contype == ConstrType.CONSTR_PRIMARY else "UNIQUE"
        if con.indexname:
            if con.contype == ConstrType.CONSTR_UNIQUE:
                return []  # the unique index already exists: nothing can be duplicated
            action = f"ADD PRIMARY KEY USING INDEX {con.indexname} on {table}"
            reason = "the index's columns are read by the statement itself"
            return [_not_checked(ctx, NOT_NULL, action, table, reason)]
        columns = [s.sval for s in con.keys or ()]
        action = f"ADD {what} ({', '.join(columns)}) on {table}"
        out = []
        if con.contype == ConstrType.CONSTR_PRIMARY:
            out.append(_null_rows(ctx, rangevar, columns, action))
        keys = [_col(c) for c in columns]
        nulls = [] if con.nulls_not_distinct else [_null(_col(c), is_null=False) for c in columns]
        out.append(_duplicates(ctx, rangevar, columns, keys, nulls, action, con.nulls_not_distinct))
        return out
    return []


def _duplicates(
    ctx: _Context,
    rangevar: Any,
    columns: Sequence[str],
    keys: Sequence[Any],
    predicates: Sequence[Any],
    action: str,
    nulls_not_distinct: bool,
) -> PreflightCheck:
    table = _table(rangevar)
    reason = ctx.blocker([table], columns)
    if reason is None:  # columns inside expressions and the partial index's WHERE
        read = [c for node in (*keys, *predicates) for c in _columns_in(node)]
        reason = ctx.state.blocker([table], read)
    if reason is not None:
        return _not_checked(ctx, UNIQUE, action, table, reason)
    nulls = " (NULLs equal: NULLS NOT DISTINCT)" if nulls_not_distinct else ""
    return ctx.check(
        UNIQUE,
        table,
        columns,
        action=action,
        key=tuple(_deparse(k) for k in keys),
        unit="keys",
        violation=f"are held by more than one row{nulls}",
        sql=duplicates_sql(ctx.source(rangevar), keys, _and(list(predicates))),
    )


def _unique_index(ctx: _Context, stmt: Any) -> list[PreflightCheck]:
    rangevar, keys, columns = stmt.relation, [], []
    for elem in stmt.indexParams or ():
        expr = _col(elem.name) if elem.name else elem.expr
        if elem.name:
            columns.append(elem.name)
        if elem.collation:
            expr = ast.CollateClause(arg=expr, collname=elem.collation)
        keys.append(expr)
    name = f" {stmt.idxname}" if stmt.idxname else ""
    action = f"CREATE UNIQUE INDEX{name} on {_table(rangevar)}"
    predicates = [] if stmt.whereClause is None else [stmt.whereClause]
    if not stmt.nulls_not_distinct:
        predicates += [_null(k, is_null=False) for k in keys]
    return [_duplicates(ctx, rangevar, columns, keys, predicates, action, stmt.nulls_not_distinct)]


def _check_violators(ctx: _Context, rangevar: Any, con: Any, validating: bool) -> PreflightCheck:
    table = _table(rangevar)
    shown = _deparse(con.raw_expr)
    verb = "VALIDATE CONSTRAINT" if validating else "ADD CHECK"
    name = f" {con.conname}" if con.conname else ""
    action = f"{verb}{name} ({shown}) on {table}"
    reason = ctx.blocker([table], [])
    if reason is None:
        columns = _columns_in(con.raw_expr)
        reason = ctx.state.blocker([table], columns)
    if reason is not None:
        return _not_checked(ctx, CHECK, action, table, reason)
    key = ctx.key(table)
    pred = _bool(BoolExprType.NOT_EXPR, [con.raw_expr])
    return ctx.check(
        CHECK,
        table,
        (),
        action=action,
        key=key,
        unit="rows",
        violation=f"violate ({shown})",
        sql=violators_sql(ctx.source(rangevar), pred, key),
    )


def _columns_in(expr: Any) -> list[str]:
    names: list[str] = []

    class _Columns(Visitor):
        def visit_ColumnRef(self, _ancestors: Any, node: Any) -> None:
            last = node.fields[-1]
            if isinstance(last, ast.String):
                names.append(str(last.sval))

    _Columns()(expr)
    return names


def _orphans(ctx: _Context, rangevar: Any, con: Any, validating: bool) -> PreflightCheck:
    table, parent = _table(rangevar), _table(con.pktable)
    fk = [s.sval for s in con.fk_attrs or ()]
    pk = [s.sval for s in con.pk_attrs or ()]
    full = con.fk_matchtype == "f"
    verb = "VALIDATE CONSTRAINT" if validating else "ADD FOREIGN KEY"
    name = f" {con.conname}" if con.conname else ""
    action = f"{verb}{name} ({', '.join(fk)}) on {table} REFERENCES {parent}"
    reason = ctx.blocker([table, parent], fk)
    parent_facts = ctx.facts.table(parent)
    if reason is None and not pk:
        pk = list(parent_facts.key) if parent_facts else []
        if not pk:
            reason = f"{parent} has no primary key for the foreign key to reference"
    if reason is None and con.fk_with_period:
        reason = "a foreign key with PERIOD is checked by the statement itself"
    if reason is not None or len(pk) != len(fk):
        return _not_checked(ctx, FOREIGN_KEY, action, table, reason or "column counts differ")
    child_cols = [_col("child", c) for c in fk]
    match = _and(
        [
            ast.A_Expr(
                kind=A_Expr_Kind.AEXPR_OP, name=(ast.String("="),), lexpr=_col("parent", p), rexpr=c
            )
            for p, c in zip(pk, child_cols, strict=True)
        ]
    )
    missing = _expr(
        f"NOT EXISTS (SELECT 1 FROM {_SLOT}parent WHERE {_SLOT}match)",
        parent=ctx.source(con.pktable, "parent"),
        match=match,
    )
    all_set = [_null(c, is_null=False) for c in child_cols]
    if full:  # all NULL passes; some NULL and some not fails; none NULL must match
        any_null = _bool(BoolExprType.OR_EXPR, [_null(c, is_null=True) for c in child_cols])
        all_null = _and([_null(c, is_null=True) for c in child_cols])
        pred = _and(
            [
                _bool(BoolExprType.NOT_EXPR, [all_null]),
                _bool(BoolExprType.OR_EXPR, [any_null, missing]),
            ]
        )
        kind = "MATCH FULL: "
    else:  # MATCH SIMPLE: a row with any NULL in the key passes
        pred = _and([*all_set, missing])
        kind = ""
    key = ctx.key(table)
    return ctx.check(
        FOREIGN_KEY,
        table,
        fk,
        action=action,
        key=key,
        unit="rows",
        violation=f"have no referenced row in {parent} ({kind}{', '.join(fk)} -> {', '.join(pk)})",
        sql=violators_sql(ctx.source(rangevar, "child"), pred, key, alias="child"),
    )


def _validate_constraint(ctx: _Context, rangevar: Any, cmd: Any) -> list[PreflightCheck]:
    table = _table(rangevar)
    con = ctx.state.constraint(table, cmd.name)
    if con is None:
        facts = ctx.facts.table(table)
        definition = facts.constraint(cmd.name) if facts is not None else None
        con = _constraint_of(definition) if definition else None
    if con is None:
        action = f"VALIDATE CONSTRAINT {cmd.name} on {table}"
        reason = f"no constraint {cmd.name} on {table} is known before the run"
        return [_not_checked(ctx, CHECK, action, table, reason)]
    if con.contype not in (ConstrType.CONSTR_CHECK, ConstrType.CONSTR_FOREIGN):
        return []
    if not con.conname:
        con.conname = cmd.name
    return _constraint_checks(ctx, rangevar, con, validating=True)


def _constraint_of(definition: str) -> Any:
    """The Constraint node of a pg_get_constraintdef text, parsed as PostgreSQL would."""
    try:
        stmt: Any = parse_sql(f"ALTER TABLE pgshift_any ADD {definition}")[0].stmt
    except ParseError:
        return None
    return stmt.cmds[0].def_


# -- type changes -----------------------------------------------------------------------------


def _type_name(type_name: Any) -> str:
    return str(type_name.names[-1].sval).lower()


def _typmods(type_name: Any) -> tuple[int, ...] | None:
    mods: list[int] = []
    for mod in type_name.typmods or ():
        if not (isinstance(mod, ast.A_Const) and isinstance(mod.val, ast.Integer)):
            return None
        mods.append(int(mod.val.ival or 0))
    return tuple(mods)


def _alter_type(ctx: _Context, rangevar: Any, cmd: Any) -> list[PreflightCheck]:
    table, column, target = _table(rangevar), cmd.name, cmd.def_.typeName
    shown = _deparse(target)
    action = f"ALTER COLUMN {column} TYPE {shown} on {table}"
    reason = ctx.blocker([table], [column])
    if reason is not None:
        return [_not_checked(ctx, TYPE_CHANGE, action, table, reason)]
    value, source, explicit, why = _conversion(ctx, table, column, cmd.def_)
    if value is None:
        return [_not_checked(ctx, TYPE_CHANGE, action, table, why)]
    if (
        cmd.def_.raw_default is None
        and source in _TEXT_TYPES
        and _type_name(target)
        not in (
            *_LENGTH_TYPES,
            "text",
        )
    ):
        why = f"PostgreSQL casts {source} to {shown} only with USING, whatever the data"
        return [_not_checked(ctx, TYPE_CHANGE, action, table, why)]
    pred, unknown = _conversion_predicate(ctx.facts.server_major, value, source, target, explicit)
    if pred is None:
        return [] if unknown is None else [_not_checked(ctx, TYPE_CHANGE, action, table, unknown)]
    key = ctx.key(table)
    return [
        ctx.check(
            TYPE_CHANGE,
            table,
            (column,),
            action=action,
            key=key,
            unit="rows",
            violation=f"have a value that does not convert to {shown}",
            sql=violators_sql(ctx.source(rangevar), pred, key),
        )
    ]


def _conversion(
    ctx: _Context, table: TableRef, column: str, definition: Any
) -> tuple[Any, str | None, bool, str]:
    """(the value converted, its type, whether the cast is explicit, why not checked).

    Without USING the column is assigned to the new type. ``USING x::t`` (t the new type)
    casts ``x`` explicitly, then assigns; any other USING expression is only evaluated by the
    statement itself.
    """
    using = definition.raw_default
    if using is None:
        return _col(column), ctx.type_of(table, column), False, ""
    if isinstance(using, ast.TypeCast) and _type_name(using.typeName) == _type_name(
        definition.typeName
    ):
        arg: Any = using.arg
        source = None
        last: Any = arg.fields[-1] if isinstance(arg, ast.ColumnRef) and arg.fields else None
        if isinstance(last, ast.String):
            source = ctx.type_of(table, str(last.sval))
        same_mods = _typmods(using.typeName) == _typmods(definition.typeName)
        return arg, source, same_mods, ""
    return (
        None,
        None,
        False,
        (
            "the USING expression is evaluated only by the statement itself"
            " (pgshift checks a column, or a column cast to the new type)"
        ),
    )


def _conversion_predicate(
    major: int, value: Any, source: str | None, target: Any, explicit: bool
) -> tuple[Any, str | None]:
    """The predicate true for a value that does not convert, or (None, why not checked), or
    (None, None) when no value can fail."""
    name, mods = _type_name(target), _typmods(target)
    if target.arrayBounds:
        return None, "a change to an array type is checked only by the statement itself"
    if source is None:
        return None, "the type of the converted value is not known before the run"
    if name in _LENGTH_TYPES:
        if explicit or not mods:
            return None, None  # an explicit cast truncates; no length, no limit
        # Assignment to varchar(n)/char(n) fails when more than n characters are not spaces.
        return _expr(f"length(rtrim({_SLOT}v::text, ' ')) > {int(mods[0])}", v=value), None
    if name == "text" or (name == source and not mods):
        return None, None
    if source in _NUMERIC_TYPES:
        return _numeric_predicate(value, name, mods, source)
    if source in _TEXT_TYPES:
        if major < 16:
            return None, (
                f"PostgreSQL {major} has no pg_input_is_valid (16+): which values of {source}"
                f" are valid input for {_deparse(target)} is known only by running the cast"
            )
        literal = ast.A_Const(val=ast.String(_deparse(target)))
        return _expr(f"NOT pg_input_is_valid({_SLOT}v::text, {_SLOT}t)", v=value, t=literal), None
    return None, f"the conversion from {source} to {_deparse(target)} is not checked"


def _numeric_predicate(
    value: Any, name: str, mods: tuple[int, ...] | None, source: str = "numeric"
) -> tuple[Any, str | None]:
    """Out of range for an integer type, or too many digits for numeric(p, s).

    From an integer type the value is compared as it is: rounding it through numeric cost
    twice the plain query on a million rows (bench/bench_preflight.py), for nothing to round.
    """
    if name in _INT_RANGES and source in _INT_RANGES:
        lo, hi = _INT_RANGES[name]
        if _INT_RANGES[source][0] >= lo and _INT_RANGES[source][1] <= hi:
            return None, None  # widening: every value fits
        return _expr(f"{_SLOT}v NOT BETWEEN {lo} AND {hi}", v=value), None
    if name in _INT_RANGES:
        lo, hi = _INT_RANGES[name]
        return _expr(f"round({_SLOT}v::numeric) NOT BETWEEN {lo} AND {hi}", v=value), None
    if name == "numeric" and mods:
        precision, scale = mods[0], (mods[1] if len(mods) > 1 else 0)
        return _expr(
            f"{_SLOT}v::numeric <> 'NaN' AND abs(round({_SLOT}v::numeric, {int(scale)}))"
            f" >= power(10::numeric, {int(precision) - int(scale)})",
            v=value,
        ), None
    if name in _NUMERIC_TYPES:
        return None, None  # widening between numbers (to float or unconstrained numeric)
    return None, f"the conversion from numbers to {name} is not checked"


_COMMANDS = {
    AlterTableType.AT_SetNotNull: _set_not_null,
    AlterTableType.AT_AddColumn: _add_column,
    AlterTableType.AT_AddConstraint: _add_constraint,
    AlterTableType.AT_ValidateConstraint: _validate_constraint,
    AlterTableType.AT_AlterColumnType: _alter_type,
}


# -- results ----------------------------------------------------------------------------------


def _examples_text(check: PreflightCheck, examples: Sequence[str], count: int) -> str:
    if not examples:
        return ""
    label = check.key[0] if len(check.key) == 1 else f"({', '.join(check.key)})"
    more = ", ..." if count > len(examples) else ""
    return f" ({label} {', '.join(examples)}{more})"


_SINGULAR = {"have": "has", "exist": "exists", "are": "is", "violate": "violates"}


def _counted(check: PreflightCheck, total: int) -> str:
    """The count and what it counts: 1 row has NULL, 1,204 rows have NULL."""
    if total != 1:
        return f"{total:,} {check.unit} {check.violation}"
    verb, _, rest = check.violation.partition(" ")
    return f"1 {check.unit.removesuffix('s')} {_SINGULAR.get(verb, verb)} {rest}"


def result_of(
    check: PreflightCheck, rows: Sequence[tuple[Any, ...]], duration_ms: float
) -> PreflightResult:
    """The result of a check from its query's rows: (example, occurrences, total) each."""
    base = PreflightResult(
        file=check.file,
        line=check.line,
        check=check.kind,
        status=PASS,
        table=str(check.table),
        migration=check.migration,
        duration_ms=duration_ms,
    )
    if not rows:
        detail = f"{check.action}: no {check.unit} {check.violation}"
        return _replace(base, count=0, detail=detail)
    total = int(rows[0][2])
    capped = total >= CAP
    examples = tuple(
        _example(r[0]) if int(r[1]) <= 1 else f"{_example(r[0])} ({int(r[1])} rows)"
        for r in rows[:EXAMPLES]
    )
    at_least = "at least " if capped else ""
    detail = (
        f"{check.action} will fail: {at_least}{_counted(check, total)}"
        f"{_examples_text(check, examples, total)}"
    )
    return _replace(base, status=FAIL, count=total, capped=capped, examples=examples, detail=detail)


def _example(key: Any) -> str:
    """A violator's key as text; a row a pending INSERT adds has none yet (ctid, a serial)."""
    return "a new row" if key is None else str(key)


def not_checked(
    check: PreflightCheck, reason: str, duration_ms: float | None = None
) -> PreflightResult:
    """A check that did not run (or could not finish), with the reason."""
    return PreflightResult(
        file=check.file,
        line=check.line,
        check=check.kind,
        status=NOT_CHECKED,
        detail=f"{check.action}: not checked: {reason}",
        duration_ms=duration_ms,
        table=str(check.table),
        migration=check.migration,
    )


def _replace(result: PreflightResult, **changes: Any) -> PreflightResult:
    from dataclasses import replace

    return replace(result, **changes)


# -- durations --------------------------------------------------------------------------------

#: Rough rates (bytes per millisecond) and per-row costs (ms) of the work a statement does
#: under its lock; an order of magnitude, for comparing against @estimated-duration.
_MB = 1024 * 1024
_RATES = {
    "rewrite": (50 * _MB / 1000, 0.0005),
    "validating scan": (200 * _MB / 1000, 0.0),
    "foreign key scan": (200 * _MB / 1000, 0.005),
    "index build": (40 * _MB / 1000, 0.001),
}


def expected_ms(work: str, facts: TableFacts) -> int:
    """The expected duration of ``work`` on a table of ``facts``' size: size over a rough
    rate, plus a per-row cost where each row costs a lookup or a sort."""
    per_ms, per_row = _RATES[work]
    return round(facts.bytes / per_ms + facts.rows * per_row)


@dataclass(frozen=True)
class Work:
    """A statement's lock-holding work on one table: a rewrite, a scan or an index build."""

    item: Pending
    kind: str
    table: TableRef


def _command_work(cmd: Any, facts: TableFacts | None) -> str | None:
    sub = cmd.subtype
    if sub == AlterTableType.AT_AlterColumnType:
        name = _type_name(cmd.def_.typeName)
        source = facts.type_of(cmd.name) if facts else None
        widening = name == "text" or (name == "varchar" and not cmd.def_.typeName.typmods)
        return None if widening and source in ("varchar", "text") else "rewrite"
    if sub == AlterTableType.AT_SetNotNull:
        return "validating scan"
    if sub == AlterTableType.AT_ValidateConstraint:
        return "validating scan"
    con = cmd.def_ if sub == AlterTableType.AT_AddConstraint else None
    if not isinstance(con, ast.Constraint) or con.skip_validation:
        return None
    if con.contype == ConstrType.CONSTR_CHECK:
        return "validating scan"
    if con.contype == ConstrType.CONSTR_FOREIGN:
        return "foreign key scan"
    if con.contype in (ConstrType.CONSTR_PRIMARY, ConstrType.CONSTR_UNIQUE):
        return None if con.indexname else "index build"
    return None


def _works(item: Pending, stmt: Any, facts: Facts) -> Iterator[Work]:
    if isinstance(stmt, ast.AlterTableStmt) and stmt.objtype == ObjectType.OBJECT_TABLE:
        table = _table(stmt.relation)
        for cmd in stmt.cmds or ():
            kind = _command_work(cmd, facts.table(table))
            if kind is not None:
                yield Work(item, kind, table)
    elif isinstance(stmt, ast.IndexStmt):
        yield Work(item, "index build", _table(stmt.relation))
    elif isinstance(stmt, ast.ClusterStmt) and stmt.relation is not None:
        yield Work(item, "rewrite", _table(stmt.relation))
    elif isinstance(stmt, ast.VacuumStmt) and any(o.defname == "full" for o in stmt.options or ()):
        for rel in stmt.rels or ():
            yield Work(item, "rewrite", _table(rel.relation))


def duration_results(pending: Sequence[Pending], facts: Facts) -> list[PreflightResult]:
    """The expected duration of every rewrite, validating scan and index build of ``pending``,
    and a warning per migration whose total is over 3x its @estimated-duration."""
    out: list[PreflightResult] = []
    totals: dict[str, tuple[int, Pending]] = {}
    for item in pending:
        for stmt in item.trees:
            for work in _works(item, stmt, facts):
                result = _duration(work, facts.table(work.table))
                out.append(result)
                if result.expected_ms is not None:
                    total, first = totals.get(item.migration, (0, item))
                    totals[item.migration] = (total + result.expected_ms, first)
    for total, first in totals.values():
        estimate = first.estimated_ms
        if estimate is not None and total > OVER_ESTIMATE * estimate:
            out.append(
                PreflightResult(
                    file=first.file,
                    line=first.line,
                    check=EXPECTED_DURATION,
                    status=WARN,
                    detail=(
                        f"{first.migration} is expected to take about {_human(total)} under"
                        f" its locks, over {OVER_ESTIMATE}x its @estimated-duration"
                        f" ({_human(estimate)})"
                    ),
                    migration=first.migration,
                    expected_ms=total,
                )
            )
    return out


def _duration(work: Work, facts: TableFacts | None) -> PreflightResult:
    item = work.item
    base = PreflightResult(
        file=item.file,
        line=item.line,
        check=EXPECTED_DURATION,
        status=NOT_CHECKED,
        table=str(work.table),
        migration=item.migration,
    )
    if facts is None:
        detail = f"{work.kind} of {work.table}: not estimated: the table is not on the target"
        return _replace(base, detail=detail)
    ms = expected_ms(work.kind, facts)
    size = f"{facts.bytes / _MB:,.1f} MB, about {round(facts.rows):,} rows"
    detail = f"{work.kind} of {work.table} ({size}): about {_human(ms)}"
    return _replace(base, status=PASS, detail=detail, expected_ms=ms)


def _human(ms: int) -> str:
    from pgshift.durations import format_duration_ms

    return format_duration_ms(ms)
