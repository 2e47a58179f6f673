"""The expand, contract and undo steps of an `@expand-contract` migration, from its parse trees.

A migration written in its final form (``RENAME COLUMN name TO full_name``, ``ALTER COLUMN
amount TYPE bigint``) is served in two shapes during a window: the old code keeps reading and
writing the old column, the new code the new one, on the same table, connecting as before.

How: each changed column gets a physical column of the new shape next to the old (the new
name itself for a rename; a shadow column, swapped in by `contract`, for a type change). A
BEFORE INSERT OR UPDATE trigger on the table keeps the two equal, row by row, in the writing
statement's own transaction (so ``ON CONFLICT``, ``RETURNING`` and user triggers keep
working: no view sits in the path). Rows written before the trigger are copied by a backfill
in key-range batches. Indexes and constraints of the new shape are built concurrently and
validated in transactions of their own. `contract` drops the old column and the trigger and
makes the final swaps in one short transaction; `rollback safe` inside the window drops what
expand added, and the old column holds every write of both shapes.

The trigger's rule, per pair of columns (old ``o``, new ``n``, ``up`` from old to new,
``down`` back): an INSERT that gives ``n`` is the new code's (only it names ``n``, which has
no default during the window), so ``o := down(n)``, else ``n := up(o)``; an UPDATE that
changes ``n`` is the new code's, so ``o := down(n)``, else ``n := up(o)``. A shadow column of
a type change is never written by clients: it is always ``up(o)``, and both shapes write the
old column, whose type checks the new code's values.

This module is pure: catalog facts (db/expand.py) come in, statements go out as text printed
from parse trees (rewrite/template.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pglast import ast, enums, parse_sql
from pglast.parser import ParseError

from pgshift.model import ColumnFacts, Statement, TableFacts
from pgshift.rewrite.backfill import Relation
from pgshift.rewrite.template import (
    column_ref,
    deparse,
    fill,
    is_node,
    parse_expression,
    parse_type,
    referenced_columns,
    renamed_columns,
)

#: Marks every object expand creates, so the catalog reader can leave them out of the facts
#: (a re-plan after a kill must derive the same steps) and a person can tell them apart.
MARK = "pgshift"
EXPAND, CONTRACT, UNDO = "expand", "contract", "undo"

AT = enums.AlterTableType
CONSTR = enums.ConstrType


class NotExpandable(ValueError):
    """A statement that expand and contract cannot serve; the message says why, for a person."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


@dataclass(frozen=True)
class Change:
    """What one command of a migration asks of one table.

    ``kind``: "rename-column" (``column`` to ``new_name``), "retype" (``column`` to
    ``type_sql``, ``using`` its USING expression), "set-not-null", "drop-column",
    "add-column" (``definition`` the command's text), "add-constraint" (``definition``,
    ``constraint`` its name), "rename-table" (to ``new_name``), "as-is" (``definition``: runs
    unchanged in the expand phase; ``undo`` how `rollback safe` takes it back).
    """

    kind: str
    table: Relation
    line: int
    column: str = ""
    new_name: str = ""
    type_sql: str = ""
    using: str | None = None
    definition: str = ""
    constraint: str = ""
    undo: str = ""
    default: str | None = None  # add-column: a default that is not a constant
    not_null: bool = False  # add-column


@dataclass(frozen=True)
class PhaseStep:
    """One statement of a phase. Consecutive steps of one ``group`` run in one transaction.

    ``backfill`` steps are an UPDATE over the whole table that pgshift runs in key-range
    batches (SPEC 14); ``concurrent_index`` names an index a CONCURRENTLY build creates, so a
    re-run can tell a finished build from an invalid leftover.
    """

    sql: str
    group: int
    line: int
    transactional: bool = True
    backfill: bool = False
    concurrent_index: tuple[str, str] | None = None

    def statement(self, index: int) -> Statement:
        kind = "Backfill" if self.backfill else _kind_of(self.sql)
        return Statement(
            index=index,
            sql=self.sql,
            line=self.line,
            column=1,
            kind=kind,
            transactional=self.transactional,
            concurrent_index=self.concurrent_index,
        )


@dataclass(frozen=True)
class OldShape:
    """What only the old code names on one table while it is served in two shapes: the
    columns renamed away or dropped, and the table's own name when the table is renamed.

    `contract --check` looks for these names in the statements sessions run. A type change
    keeps the column's name, so the old and the new code name it alike: it has no entry here.
    ``new_columns``: the columns the old shape did not have (a rename's new name, a type
    change's shadow); a statement naming one is not the old code's, which predates them (the
    expansion's own backfill names both).
    """

    schema: str
    table: str  # the table as the old code names it
    columns: tuple[str, ...] = ()
    table_renamed: bool = False
    new_columns: tuple[str, ...] = ()

    def record(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "table": self.table,
            "columns": list(self.columns),
            "table_renamed": self.table_renamed,
            "new_columns": list(self.new_columns),
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> OldShape:
        return cls(
            str(record["schema"]),
            str(record["table"]),
            tuple(str(c) for c in record.get("columns", ())),
            bool(record.get("table_renamed", False)),
            tuple(str(c) for c in record.get("new_columns", ())),
        )


@dataclass(frozen=True)
class Expansion:
    """The three phases of one migration, and what a person is told of them."""

    version: str
    tables: tuple[str, ...]  # schema.table of every table the window serves in two shapes
    expand: tuple[PhaseStep, ...]
    contract: tuple[PhaseStep, ...]
    undo: tuple[PhaseStep, ...]
    summary: tuple[str, ...] = ()  # one line per change: what expand does, what contract ends
    removes: tuple[str, ...] = field(default=())  # what contract removes, for its question
    old_names: tuple[OldShape, ...] = ()  # what only the old code names (contract --check)

    def steps(self, phase: str) -> tuple[PhaseStep, ...]:
        return {EXPAND: self.expand, CONTRACT: self.contract, UNDO: self.undo}[phase]

    def statements(self, phase: str) -> tuple[Statement, ...]:
        return tuple(s.statement(i) for i, s in enumerate(self.steps(phase)))

    def groups(self, phase: str) -> tuple[tuple[int, int, bool], ...]:
        """(start, end, transactional) of each transaction of ``phase``, in order."""
        found: list[tuple[int, int, bool]] = []
        steps = self.steps(phase)
        for i, step in enumerate(steps):
            alone = step.backfill or not step.transactional
            if found and not alone and i > 0 and _joins(steps[i - 1], step):
                start, _, _ = found[-1]
                found[-1] = (start, i + 1, True)
            else:
                found.append((i, i + 1, step.transactional and not step.backfill))
        return tuple(found)

    def record(self) -> dict[str, Any]:
        """What the applied row keeps, so contract and undo never depend on re-deriving."""
        return {
            "phase": "expanded",
            "tables": list(self.tables),
            "contract": [_step_record(s) for s in self.contract],
            "undo": [_step_record(s) for s in self.undo],
            "summary": list(self.summary),
            "removes": list(self.removes),
            "old_names": [o.record() for o in self.old_names],
        }

    @classmethod
    def from_record(cls, version: str, record: Mapping[str, Any]) -> Expansion:
        return cls(
            version=version,
            tables=tuple(record.get("tables", ())),
            expand=(),
            contract=tuple(_step_of(r) for r in record.get("contract", ())),
            undo=tuple(_step_of(r) for r in record.get("undo", ())),
            summary=tuple(record.get("summary", ())),
            removes=tuple(record.get("removes", ())),
            old_names=tuple(OldShape.from_record(o) for o in record.get("old_names", ())),
        )


def _joins(before: PhaseStep, step: PhaseStep) -> bool:
    return before.group == step.group and before.transactional and not before.backfill


def _step_record(step: PhaseStep) -> dict[str, Any]:
    return {
        "sql": step.sql,
        "group": step.group,
        "line": step.line,
        "transactional": step.transactional,
        "concurrent_index": list(step.concurrent_index) if step.concurrent_index else None,
    }


def _step_of(record: Mapping[str, Any]) -> PhaseStep:
    index = record.get("concurrent_index")
    return PhaseStep(
        sql=str(record["sql"]),
        group=int(record["group"]),
        line=int(record.get("line", 1)),
        transactional=bool(record.get("transactional", True)),
        concurrent_index=(str(index[0]), str(index[1])) if index else None,
    )


def _tree(sql: str) -> Any:
    """The tree of the one statement ``sql``."""
    return parse_sql(sql)[0].stmt


def _kind_of(sql: str) -> str:
    try:
        return type(_tree(sql)).__name__
    except (ParseError, IndexError):
        return "Unknown"


# -- reading what the migration asks -----------------------------------------------------------


def _relation(node: Any) -> Relation:
    return Relation(node.schemaname or None, node.relname)


def changes_of(statements: Sequence[Statement]) -> tuple[Change, ...]:
    """Every change the statements ask, in order, or NotExpandable naming the first that
    cannot be served in two shapes."""
    changes: list[Change] = []
    for statement in statements:
        try:
            trees = parse_sql(statement.sql)
        except ParseError as exc:
            raise NotExpandable(statement.line, f"the statement does not parse: {exc}") from None
        for raw in trees:
            changes.extend(_changes(raw.stmt, statement))
    return tuple(changes)


def _changes(stmt: Any, statement: Statement) -> list[Change]:
    line = statement.line
    if is_node(stmt, ast.RenameStmt) and stmt.relation is not None:
        table = _relation(stmt.relation)
        if stmt.renameType == enums.ObjectType.OBJECT_COLUMN:
            return [
                Change("rename-column", table, line, column=stmt.subname, new_name=stmt.newname)
            ]
        if stmt.renameType == enums.ObjectType.OBJECT_TABLE:
            return [Change("rename-table", table, line, new_name=stmt.newname)]
    if is_node(stmt, ast.AlterTableStmt) and stmt.objtype == enums.ObjectType.OBJECT_TABLE:
        table = _relation(stmt.relation)
        return [_command(cmd, table, line) for cmd in stmt.cmds]
    if is_node(stmt, ast.IndexStmt):
        index = stmt.idxname
        if not index:
            raise NotExpandable(line, "name the index: its undo drops it by name")
        schema = stmt.relation.schemaname
        undo = (
            fill("DROP INDEX IF EXISTS __s.__i", __s=schema, __i=index)
            if schema
            else (fill("DROP INDEX IF EXISTS __i", __i=index))
        )
        return [
            Change("as-is", _relation(stmt.relation), line, definition=statement.sql, undo=undo)
        ]
    if is_node(stmt, ast.CreateStmt):
        table = _relation(stmt.relation)
        undo = _drop_table(table)
        return [Change("as-is", table, line, definition=statement.sql, undo=undo)]
    raise NotExpandable(
        line,
        f"{type(stmt).__name__} is not one expand and contract can serve in two shapes; move it"
        " to a migration of its own",
    )


def _drop_table(table: Relation) -> str:
    if table.schema:
        return fill("DROP TABLE IF EXISTS __s.__t", __s=table.schema, __t=table.name)
    return fill("DROP TABLE IF EXISTS __t", __t=table.name)


def _command(cmd: Any, table: Relation, line: int) -> Change:
    subtype = cmd.subtype
    if subtype == AT.AT_AlterColumnType:
        definition = cmd.def_
        using = deparse(definition.raw_default) if definition.raw_default is not None else None
        if definition.collClause is not None:
            raise NotExpandable(line, "a type change with COLLATE is not served yet")
        type_sql = deparse(definition.typeName)
        return Change("retype", table, line, column=cmd.name, type_sql=type_sql, using=using)
    if subtype == AT.AT_SetNotNull:
        return Change("set-not-null", table, line, column=cmd.name)
    if subtype == AT.AT_DropColumn:
        return Change("drop-column", table, line, column=cmd.name)
    if subtype == AT.AT_AddColumn:
        return _add_column(cmd.def_, table, line)
    if subtype == AT.AT_AddConstraint:
        return _add_constraint(cmd.def_, table, line)
    if subtype in (AT.AT_DropNotNull, AT.AT_ColumnDefault):
        return Change("as-is", table, line, column=cmd.name, definition=_alter(table, cmd))
    raise NotExpandable(
        line,
        f"ALTER TABLE {_subtype_name(subtype)} is not one expand and contract can serve in two"
        " shapes; move it to a migration of its own",
    )


def _subtype_name(subtype: Any) -> str:
    return str(getattr(subtype, "name", subtype)).removeprefix("AT_")


def _alter(table: Relation, cmd: Any) -> str:
    relation = ast.RangeVar(
        schemaname=table.schema, relname=table.name, inh=True, relpersistence="p"
    )
    stmt = ast.AlterTableStmt(relation=relation, cmds=(cmd,), objtype=enums.ObjectType.OBJECT_TABLE)
    return deparse(stmt)


def _add_column(definition: Any, table: Relation, line: int) -> Change:
    not_null = False
    default: Any = None
    for constraint in definition.constraints or ():
        if constraint.contype == CONSTR.CONSTR_NOTNULL:
            not_null = True
        elif constraint.contype == CONSTR.CONSTR_DEFAULT:
            default = constraint.raw_expr
        elif constraint.contype != CONSTR.CONSTR_NULL:
            raise NotExpandable(
                line, "add the column's constraints with ADD CONSTRAINT, each its own command"
            )
    name = definition.colname
    if not_null and default is None:
        raise NotExpandable(
            line,
            f"ADD COLUMN {name} NOT NULL without a DEFAULT breaks the old code, whose INSERTs"
            " do not name it: give it a DEFAULT",
        )
    type_sql = deparse(definition.typeName)
    constant = default is None or _constant(default)
    return Change(
        "add-column",
        table,
        line,
        column=name,
        type_sql=type_sql,
        default=None if constant else deparse(default),
        definition=deparse(default) if (constant and default is not None) else "",
        not_null=not_null,
    )


def _constant(node: Any) -> bool:
    """A default PostgreSQL stores once for every row (no rewrite, no per-row call)."""
    if is_node(node, ast.A_Const):
        return True
    if is_node(node, ast.TypeCast):
        return _constant(node.arg)
    return False


def _add_constraint(constraint: Any, table: Relation, line: int) -> Change:
    kind = constraint.contype
    if kind not in (CONSTR.CONSTR_CHECK, CONSTR.CONSTR_FOREIGN, CONSTR.CONSTR_UNIQUE):
        raise NotExpandable(
            line,
            "only CHECK, FOREIGN KEY and UNIQUE constraints are added in two phases; a PRIMARY"
            " KEY or EXCLUDE needs a migration of its own",
        )
    if not constraint.conname:
        raise NotExpandable(line, "name the constraint: its undo drops it by name")
    return Change(
        "add-constraint",
        table,
        line,
        constraint=constraint.conname,
        definition=deparse(constraint),
    )


def tables_of(changes: Sequence[Change]) -> tuple[Relation, ...]:
    """The tables whose facts the expansion needs, in order of first mention."""
    found: list[Relation] = []
    for change in changes:
        if change.kind != "as-is" and change.table not in found:
            found.append(change.table)
    return tuple(found)


# -- deriving the phases ---------------------------------------------------------------------


def artifact(base: str, tag: str, version: str) -> str:
    """The name of an object expand creates: readable, marked, unique to the migration, and
    within PostgreSQL's 63 bytes (a long base is cut and a digest keeps it unique)."""
    suffix = f"_{MARK}_{tag}_{version}"
    name = base + suffix
    if len(name.encode()) <= 63:
        return name
    digest = hashlib.sha256(base.encode()).hexdigest()[:6]
    room = 63 - len(suffix.encode()) - 7
    cut = base.encode()[:room].decode(errors="ignore")
    return f"{cut}_{digest}{suffix}"


@dataclass
class _Pair:
    """One column in two shapes: the old code's ``old``, the new code's ``new``, physically
    ``shadow`` until contract (== ``new`` for a rename). ``writable``: the new code writes
    the shadow itself (a rename), else only the trigger does (a type change under one name)."""

    old: ColumnFacts
    new: str
    shadow: str
    type_sql: str
    up: Any  # expression node over the old row's columns
    down: Any  # expression node over the new column
    writable: bool
    line: int
    not_null: bool = False  # the new shape is NOT NULL (as the old column was, or made so)


@dataclass
class _Table:
    facts: TableFacts
    relation: Relation
    pairs: list[_Pair] = field(default_factory=list)
    not_null: list[tuple[str, int]] = field(default_factory=list)  # (column as finally named, line)
    dropped: list[tuple[str, int]] = field(default_factory=list)
    added: list[Change] = field(default_factory=list)
    constraints: list[Change] = field(default_factory=list)
    renamed_to: str | None = None

    def pair(self, name: str) -> _Pair | None:
        return next((p for p in self.pairs if p.new == name), None)


class _Deriver:
    def __init__(
        self, version: str, facts: Mapping[Relation, TableFacts], down: str | None
    ) -> None:
        self.version = version
        self.facts = facts
        self.down = parse_expression(down) if down else None
        self.tables: dict[Relation, _Table] = {}
        self.as_is: list[Change] = []

    def table(self, change: Change) -> _Table:
        found = self.tables.get(change.table)
        if found is None:
            facts = self.facts.get(change.table)
            if facts is None:
                raise NotExpandable(change.line, f"table {change.table} does not exist")
            found = _Table(facts, change.table)
            self.tables[change.table] = found
        if found.renamed_to is not None:
            raise NotExpandable(
                change.line,
                f"{change.table} is renamed in this migration: rename it in a migration of its own",
            )
        return found

    def add(self, change: Change) -> None:
        if change.kind == "as-is":
            self.as_is.append(change)
            return
        table = self.table(change)
        handler = {
            "rename-column": self._rename_column,
            "retype": self._retype,
            "set-not-null": self._set_not_null,
            "drop-column": self._drop_column,
            "add-column": self._add_column,
            "add-constraint": self._add_constraint,
            "rename-table": self._rename_table,
        }[change.kind]
        handler(table, change)

    def _column(self, table: _Table, name: str, line: int, *, dropped: bool = False) -> ColumnFacts:
        column = table.facts.column(name)
        if column is None:
            raise NotExpandable(line, f"column {name} of {table.relation} does not exist")
        self._refuse_dependents(table, column, line, dropped=dropped)
        return column

    def _refuse_dependents(
        self, table: _Table, column: ColumnFacts, line: int, *, dropped: bool
    ) -> None:
        """What contract could not carry over to the new column, refused now with the reason:
        a generated column; views reading the column; and for a column dropped for good, the
        primary key and foreign keys that point at it (a renamed or retyped one carries them)."""
        if column.generated:
            raise NotExpandable(
                line, f"{column.name} is a generated column: not served in two shapes yet"
            )
        for view, columns in table.facts.views:
            if column.name in columns:
                raise NotExpandable(
                    line,
                    f"view {view} reads {column.name}: contract could not drop the old column;"
                    " change the view in a migration of its own first",
                )
        if not dropped:
            return
        for reference in table.facts.referenced:
            if column.name in reference.columns:
                raise NotExpandable(
                    line,
                    f"{column.name} is referenced by foreign key {reference.name} of"
                    f" {reference.table}: drop that constraint first",
                )
        if column.name in table.facts.key:
            raise NotExpandable(
                line, f"{column.name} is part of the primary key of {table.relation}"
            )

    def _rename_column(self, table: _Table, change: Change) -> None:
        existing = table.pair(change.column)
        if existing is not None:
            if not existing.writable:  # retyped, then renamed: the shadow takes the new name
                existing.shadow = change.new_name
                existing.writable = True
            if existing.down is not None:
                existing.down = renamed_columns(
                    existing.down, {existing.new: column_ref(change.new_name)}
                )
            existing.new = change.new_name
            return
        ours = any(self.version in trigger for trigger in table.facts.triggers)
        if table.facts.column(change.new_name) is not None and not ours:
            raise NotExpandable(
                change.line, f"{table.relation} already has a column {change.new_name}"
            )
        old = self._column(table, change.column, change.line)
        table.pairs.append(
            _Pair(
                old,
                change.new_name,
                change.new_name,
                old.type,
                None,
                None,
                True,
                change.line,
                old.not_null,
            )
        )

    def _retype(self, table: _Table, change: Change) -> None:
        existing = table.pair(change.column)
        if existing is not None and existing.up is not None:
            raise NotExpandable(
                change.line, f"{change.column} changes type twice in this migration"
            )
        old = existing.old if existing else self._column(table, change.column, change.line)
        using = parse_expression(change.using) if change.using else None
        source = existing.old.name if existing else old.name
        if using is not None and existing is not None:  # USING names the column by its new name
            using = renamed_columns(using, {existing.new: column_ref(source)})
        up = using if using is not None else parse_expression(f"NULL::{change.type_sql}")
        if using is None:
            up.arg = column_ref(source)
        down = self._down(change, old)
        if existing is not None:
            existing.type_sql, existing.up, existing.down = change.type_sql, up, down
            return
        shadow = artifact(old.name, "new", self.version)
        table.pairs.append(
            _Pair(
                old, old.name, shadow, change.type_sql, up, down, False, change.line, old.not_null
            )
        )

    def _down(self, change: Change, old: ColumnFacts) -> Any:
        """From the new column's value back to the old type: `@expand-down` when it names this
        column, else a cast (which refuses a new value the old type cannot hold)."""
        if self.down is not None and referenced_columns(self.down) == (change.column,):
            return self.down
        cast = parse_expression(f"NULL::{old.type}")
        cast.arg = column_ref(change.column)
        return cast

    def _set_not_null(self, table: _Table, change: Change) -> None:
        pair = table.pair(change.column)
        if pair is not None:  # the swap at contract makes the new column NOT NULL
            pair.not_null = True
            return
        self._column(table, change.column, change.line)
        table.not_null.append((change.column, change.line))

    def _drop_column(self, table: _Table, change: Change) -> None:
        self._column(table, change.column, change.line, dropped=True)
        table.dropped.append((change.column, change.line))

    def _add_column(self, table: _Table, change: Change) -> None:
        table.added.append(change)

    def _add_constraint(self, table: _Table, change: Change) -> None:
        table.constraints.append(change)

    def _rename_table(self, table: _Table, change: Change) -> None:
        if table.pairs or table.not_null or table.dropped or table.added or table.constraints:
            raise NotExpandable(change.line, f"rename {table.relation} in a migration of its own")
        table.renamed_to = change.new_name


def expansion(
    version: str,
    changes: Sequence[Change],
    facts: Mapping[Relation, TableFacts],
    *,
    down: str | None = None,
) -> Expansion:
    """The phases of migration ``version`` from its ``changes`` and the ``facts`` of the
    tables they name (read before anything of the expansion exists, or with its artifacts
    left out), or NotExpandable naming the change that cannot be served."""
    deriver = _Deriver(version, facts, down)
    for change in changes:
        deriver.add(change)
    builder = _Phases(version)
    for change in deriver.as_is:
        builder.asis_node(change)
    for table in deriver.tables.values():
        builder.table(table)
    result = builder.result(
        tuple(f"{t.facts.schema}.{t.facts.name}" for t in deriver.tables.values())
    )
    old = tuple(_old_shape(t) for t in deriver.tables.values())
    return replace(result, old_names=tuple(o for o in old if o.columns or o.table_renamed))


def _old_shape(table: _Table) -> OldShape:
    """The names of ``table`` only the old code uses: a pair's old column when renamed (a type
    change alone keeps the name), a dropped column, the table's name when it is renamed."""
    columns = [p.old.name for p in table.pairs if p.old.name != p.new]
    columns += [name for name, _ in table.dropped]
    new = [p.shadow for p in table.pairs] + [c.column for c in table.added if c.column]
    return OldShape(
        table.facts.schema,
        table.facts.name,
        tuple(dict.fromkeys(columns)),
        table.renamed_to is not None,
        tuple(dict.fromkeys(new)),
    )


class _Phases:
    """Collects the statements of the three phases, table by table."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.setup: list[PhaseStep] = []  # one transaction: columns, trigger, NOT VALID constraints
        self.later: list[PhaseStep] = []  # backfills, concurrent builds, validations
        self.contract: list[PhaseStep] = []
        self.renames: list[PhaseStep] = []  # contract's renames, after the old objects are gone
        self.contract_later: list[PhaseStep] = []  # validations, each its own transaction
        self.undo: list[PhaseStep] = []
        self.summary: list[str] = []
        self.removes: list[str] = []

    def result(self, tables: tuple[str, ...]) -> Expansion:
        return Expansion(
            version=self.version,
            tables=tables,
            expand=tuple(self.setup + self.later),
            contract=tuple(self.contract + self.renames + self.contract_later),
            undo=tuple(reversed(self.undo)),
            summary=tuple(self.summary),
            removes=tuple(self.removes),
        )

    def _setup(self, sql: str, line: int) -> None:
        self.setup.append(PhaseStep(sql, 0, line))

    def _later(self, sql: str, line: int, **kw: Any) -> None:
        self.later.append(PhaseStep(sql, len(self.later) + 1, line, **kw))

    def _contract(self, sql: str, line: int) -> None:
        self.contract.append(PhaseStep(sql, 0, line))

    def _rename(self, sql: str, line: int) -> None:
        self.renames.append(PhaseStep(sql, 0, line))

    def _undo(self, sql: str, line: int, **kw: Any) -> None:
        self.undo.append(PhaseStep(sql, 0, line, **kw))

    def asis_node(self, change: Change) -> None:
        statement = _tree(change.definition)
        concurrent = is_node(statement, ast.IndexStmt) and statement.concurrent
        if concurrent:
            schema = statement.relation.schemaname or "public"
            self._later(
                change.definition,
                change.line,
                transactional=False,
                concurrent_index=(schema, statement.idxname),
            )
            self._undo(change.undo, change.line)
        else:
            self._setup(change.definition, change.line)
            if change.undo:
                self._undo(change.undo, change.line)
        self.summary.append(f"line {change.line}: runs as written")

    def table(self, table: _Table) -> None:
        facts = table.facts
        names = {"__s": facts.schema, "__t": facts.name}
        if table.renamed_to is not None:
            self._rename_table(table, names)
            return
        for change in table.added:
            self._add_column(table, change, names)
        if table.pairs:
            self._pairs(table, names)
        for column, line in table.not_null:
            self._not_null(table, column, line, names)
        for column, line in table.dropped:
            self._drop_column(table, column, line, names)
        for change in table.constraints:
            self._constraint(table, change, names)

    # -- a table renamed: a view of the old name serves the old code -------------------------

    def _rename_table(self, table: _Table, names: dict[str, Any]) -> None:
        new = table.renamed_to or ""
        line = 1
        self._setup(fill("ALTER TABLE __s.__t RENAME TO __n", **names, __n=new), line)
        self._setup(fill("CREATE VIEW __s.__t AS SELECT * FROM __s.__n", **names, __n=new), line)
        for grantee, privilege in table.facts.grants:
            sql = fill(f"GRANT {privilege} ON __s.__t TO __g", **names, __g=grantee)
            self._setup(sql, line)
        self._contract(fill("DROP VIEW __s.__t", **names), line)
        self._undo(fill("ALTER TABLE IF EXISTS __s.__n RENAME TO __t", **names, __n=new), line)
        self._undo(fill("DROP VIEW IF EXISTS __s.__t", **names), line)
        shown = f"{table.facts.schema}.{table.facts.name}"
        self.summary.append(
            f"{shown} renamed to {new}; a view {shown} serves the old code until contract"
        )
        self.removes.append(f"view {shown}")

    # -- columns served in two shapes ------------------------------------------------------------

    def _pairs(self, table: _Table, names: dict[str, Any]) -> None:
        facts, version = table.facts, self.version
        function = artifact(facts.name, "sync", version)
        trigger = "zz_" + artifact(facts.name, "sync", version)
        line = table.pairs[0].line
        for pair in table.pairs:
            type_node = parse_type(pair.type_sql)
            sql = fill(
                "ALTER TABLE __s.__t ADD COLUMN __c __ty", **names, __c=pair.shadow, __ty=type_node
            )
            self._setup(sql, pair.line)
        self._setup(_sync_function(facts.schema, function, table.pairs), line)
        watched = _watched(table.pairs)
        self._setup(
            fill(
                "CREATE TRIGGER __tr BEFORE INSERT OR UPDATE OF __cols ON __s.__t FOR EACH ROW"
                " EXECUTE FUNCTION __s.__f()",
                **names,
                __tr=trigger,
                __f=function,
                __cols=watched,
            ),
            line,
        )
        self._backfill(table, names, line)
        for pair in table.pairs:
            self._carry_column(table, pair, names)
        for pair in table.pairs:
            self._release_references(table, pair)
        self._contract(fill("DROP TRIGGER __tr ON __s.__t", **names, __tr=trigger), line)
        self._contract(fill("DROP FUNCTION __s.__f()", **names, __f=function), line)
        for pair in table.pairs:
            self._swap(table, pair, names)
        for pair in table.pairs:
            self._restore_references(table, pair)
        for pair in table.pairs:
            self._undo(
                fill("ALTER TABLE __s.__t DROP COLUMN IF EXISTS __c", **names, __c=pair.shadow),
                pair.line,
            )
        self._undo(fill("DROP FUNCTION IF EXISTS __s.__f()", **names, __f=function), line)
        self._undo(fill("DROP TRIGGER IF EXISTS __tr ON __s.__t", **names, __tr=trigger), line)
        self.removes.append(f"trigger {trigger} and function {facts.schema}.{function}")

    def _backfill(self, table: _Table, names: dict[str, Any], line: int) -> None:
        sets = []
        differs = []
        for pair in table.pairs:
            up = pair.up if pair.up is not None else column_ref(pair.old.name)
            sets.append(ast.ResTarget(name=pair.shadow, val=up))
            differs.append(_distinct(column_ref(pair.shadow), up))
        stmt = _tree(fill("UPDATE __s.__t SET __x = 1", **names, __x="x"))
        stmt.targetList = tuple(sets)
        stmt.whereClause = (
            differs[0]
            if len(differs) == 1
            else ast.BoolExpr(boolop=enums.BoolExprType.OR_EXPR, args=tuple(differs))
        )
        self._later(deparse(stmt), line, backfill=True)
        # The copy left a dead version of every row: vacuumed now (no lock that blocks reads
        # or writes), the index builds scan half as much and the application's writes do not
        # pay for them (bench/bench_expand.py measured 1.6-1.8x on a set-based UPDATE).
        self._later(fill("VACUUM (ANALYZE) __s.__t", **names), line, transactional=False)

    def _carry_column(self, table: _Table, pair: _Pair, names: dict[str, Any]) -> None:
        """What the new column needs to stand in for the old one: its indexes (built
        concurrently), NOT NULL (as a validated CHECK until contract), CHECK and FOREIGN KEY
        constraints (NOT VALID, then validated), its comment."""
        facts, old, version = table.facts, pair.old, self.version
        if pair.not_null:
            check = artifact(pair.new, "nn", version)
            self._not_valid_check(names, check, pair.shadow, pair.line)
        for index in facts.indexes:
            if old.name in index.columns:
                self._carry_index(facts, index, pair, names)
        for constraint in facts.constraints:
            if old.name in constraint.columns:
                self._carry_constraint(constraint, pair, names)
        if old.comment is not None:
            comment = _tree(fill("COMMENT ON COLUMN __s.__t.__c IS 'x'", **names, __c=pair.shadow))
            comment.comment = old.comment
            self._setup(deparse(comment), pair.line)
        summary = (
            f"{facts.schema}.{facts.name}.{old.name} renamed to {pair.new}"
            if pair.writable and pair.new != old.name
            else f"{facts.schema}.{facts.name}.{old.name} changes type"
        )
        if pair.up is not None and not pair.writable:
            summary += f" to {pair.type_sql}, in a shadow column {pair.shadow} until contract"
        elif pair.type_sql != old.type:
            summary += f" (type {pair.type_sql})"
        self.summary.append(summary + "; a trigger keeps both shapes equal")
        self.removes.append(f"column {facts.schema}.{facts.name}.{old.name}")

    def _not_valid_check(self, names: dict[str, Any], check: str, column: str, line: int) -> None:
        self._setup(
            fill(
                "ALTER TABLE __s.__t ADD CONSTRAINT __k CHECK (__c IS NOT NULL) NOT VALID",
                **names,
                __k=check,
                __c=column,
            ),
            line,
        )
        self._later(fill("ALTER TABLE __s.__t VALIDATE CONSTRAINT __k", **names, __k=check), line)

    def _carry_index(
        self, facts: TableFacts, index: Any, pair: _Pair, names: dict[str, Any]
    ) -> None:
        stmt = _tree(index.definition)
        built = artifact(index.name, "ix", self.version)
        stmt.idxname = built
        stmt.concurrent = True
        renamed = {pair.old.name: column_ref(pair.shadow)}
        stmt.indexParams = tuple(_index_param(p, pair, renamed) for p in stmt.indexParams)
        if stmt.whereClause is not None:
            stmt.whereClause = renamed_columns(stmt.whereClause, renamed)
        self._later(
            deparse(stmt), pair.line, transactional=False, concurrent_index=(facts.schema, built)
        )
        self._undo(fill("DROP INDEX IF EXISTS __s.__i", __s=facts.schema, __i=built), pair.line)
        final = index.name
        self._rename(
            fill("ALTER INDEX __s.__i RENAME TO __n", __s=facts.schema, __i=built, __n=final),
            pair.line,
        )
        if index.constraint is not None:
            kind = "PRIMARY KEY" if index.primary else "UNIQUE"
            self._rename(
                fill(
                    f"ALTER TABLE __s.__t ADD CONSTRAINT __k {kind} USING INDEX __i",
                    **names,
                    __k=index.constraint,
                    __i=final,
                ),
                pair.line,
            )

    def _carry_constraint(self, constraint: Any, pair: _Pair, names: dict[str, Any]) -> None:
        node = _tree(fill("ALTER TABLE __s.__t ADD CONSTRAINT __k CHECK (true)", **names, __k="k"))
        definition = _tree(f"ALTER TABLE t ADD {constraint.definition}").cmds[0].def_
        built = artifact(constraint.name, "ck", self.version)
        definition.conname = built
        definition.skip_validation = True
        definition.initially_valid = False
        if definition.raw_expr is not None:
            definition.raw_expr = renamed_columns(
                definition.raw_expr, {pair.old.name: column_ref(pair.shadow)}
            )
        if definition.fk_attrs:
            definition.fk_attrs = tuple(
                ast.String(sval=pair.shadow if a.sval == pair.old.name else a.sval)
                for a in definition.fk_attrs
            )
        node.cmds[0].def_ = definition
        self._setup(deparse(node), pair.line)
        self._later(
            fill("ALTER TABLE __s.__t VALIDATE CONSTRAINT __k", **names, __k=built), pair.line
        )
        self._rename(
            fill(
                "ALTER TABLE __s.__t RENAME CONSTRAINT __k TO __n",
                **names,
                __k=built,
                __n=constraint.name,
            ),
            pair.line,
        )

    def _remember_identity(self, pair: _Pair) -> None:
        """The next number the old identity would give, kept in a setting local to the
        contract's transaction: its sequence goes with the old column, and the new column's
        identity starts there (the transaction holds the table: no row takes one between)."""
        stmt = _tree(
            "SELECT set_config('pgshift.identity', (CASE WHEN s.is_called THEN s.last_value + 1"
            " ELSE s.last_value END)::text, true) FROM x s"
        )
        source = _range_var(pair.old.sequence or "")
        source.alias = stmt.fromClause[0].alias
        stmt.fromClause = (source,)
        self._contract(deparse(stmt), pair.line)

    def _restore_identity(self, table: _Table, pair: _Pair, names: dict[str, Any]) -> None:
        """The new column (NOT NULL by now) becomes the identity, ALWAYS or BY DEFAULT as the
        old one was, and goes on from the number _remember_identity kept."""
        kind = "ALWAYS" if pair.old.identity == "a" else "BY DEFAULT"
        sql = fill(
            f"ALTER TABLE __s.__t ALTER COLUMN __c ADD GENERATED {kind} AS IDENTITY",
            **names,
            __c=pair.new,
        )
        self._contract(sql, pair.line)
        stmt = _tree(
            "SELECT setval(pg_get_serial_sequence('t', 'c'),"
            " current_setting('pgshift.identity')::bigint, false)"
        )
        call = stmt.targetList[0].val.args[0]
        table_name = f"{_quoted(table.facts.schema)}.{_quoted(table.facts.name)}"
        call.args = (_string(table_name), _string(pair.new))
        self._contract(deparse(stmt), pair.line)

    def _release_references(self, table: _Table, pair: _Pair) -> None:
        """Foreign keys of other tables that point at the old column go before it does, in
        the contract's transaction (they would keep it, and its key index, from going)."""
        for reference in table.facts.referenced:
            if pair.old.name in reference.columns:
                stmt = _tree("ALTER TABLE x DROP CONSTRAINT __k".replace("__k", "k"))
                stmt.relation = _range_var(reference.table)
                stmt.cmds[0].name = reference.name
                self._contract(deparse(stmt), pair.line)

    def _restore_references(self, table: _Table, pair: _Pair) -> None:
        """The same foreign keys, on the new column, added NOT VALID in the contract's
        transaction once the new key exists, then validated each in a transaction of its own
        (SHARE UPDATE EXCLUSIVE: writes go on meanwhile)."""
        for reference in table.facts.referenced:
            if pair.old.name not in reference.columns:
                continue
            stmt = _tree("ALTER TABLE x ADD CONSTRAINT k CHECK (true)")
            stmt.relation = _range_var(reference.table)
            definition = _tree(f"ALTER TABLE t ADD {reference.definition}").cmds[0].def_
            definition.conname = reference.name
            definition.skip_validation = True
            definition.initially_valid = False
            definition.pk_attrs = tuple(
                ast.String(sval=pair.new if a.sval == pair.old.name else a.sval)
                for a in definition.pk_attrs or ()
            )
            stmt.cmds[0].def_ = definition
            self._rename(deparse(stmt), pair.line)
            validate = _tree("ALTER TABLE x VALIDATE CONSTRAINT k")
            validate.relation = _range_var(reference.table)
            validate.cmds[0].name = reference.name
            self.contract_later.append(
                PhaseStep(deparse(validate), len(self.contract_later) + 1, pair.line)
            )

    def _swap(self, table: _Table, pair: _Pair, names: dict[str, Any]) -> None:
        """The contract of one pair, in the one short transaction: the old column goes (with
        its indexes and constraints), the shadow takes the final name and what the old column
        had (default, NOT NULL, its identity or owned sequence, which goes on counting)."""
        old, line = pair.old, pair.line
        serial = old.sequence is not None and not old.identity
        if old.identity:
            self._remember_identity(pair)
        if serial:
            self._contract(deparse(_tree(f"ALTER SEQUENCE {old.sequence} OWNED BY NONE")), line)
        self._contract(fill("ALTER TABLE __s.__t DROP COLUMN __c", **names, __c=old.name), line)
        if pair.shadow != pair.new:
            sql = fill(
                "ALTER TABLE __s.__t RENAME COLUMN __c TO __n",
                **names,
                __c=pair.shadow,
                __n=pair.new,
            )
            self._contract(sql, line)
        if old.default is not None and not old.identity:
            sql = fill(
                "ALTER TABLE __s.__t ALTER COLUMN __c SET DEFAULT __d",
                **names,
                __c=pair.new,
                __d="d",
            )
            stmt = _tree(sql)
            stmt.cmds[0].def_ = parse_expression(old.default)
            self._contract(deparse(stmt), line)
        if serial:
            sequence = _tree(f"ALTER SEQUENCE {old.sequence} OWNED BY x.y.z")
            sequence.options[0].arg = (
                ast.String(sval=table.facts.schema),
                ast.String(sval=table.facts.name),
                ast.String(sval=pair.new),
            )
            self._contract(deparse(sequence), line)
            if pair.type_sql in _SEQUENCE_TYPES and pair.type_sql != old.type:
                widened = _tree(f"ALTER SEQUENCE {old.sequence} AS bigint")
                widened.options[0].arg = parse_type(pair.type_sql)
                self._contract(deparse(widened), line)
        if pair.not_null:
            check = artifact(pair.new, "nn", self.version)
            self._contract(
                fill("ALTER TABLE __s.__t ALTER COLUMN __c SET NOT NULL", **names, __c=pair.new),
                line,
            )
            self._contract(
                fill("ALTER TABLE __s.__t DROP CONSTRAINT __k", **names, __k=check), line
            )
        if old.identity:
            self._restore_identity(table, pair, names)

    # -- changes that need no second column -------------------------------------------------

    def _not_null(self, table: _Table, column: str, line: int, names: dict[str, Any]) -> None:
        check = artifact(column, "nn", self.version)
        self._not_valid_check(names, check, column, line)
        self._undo(
            fill("ALTER TABLE __s.__t DROP CONSTRAINT IF EXISTS __k", **names, __k=check), line
        )
        self._contract(
            fill("ALTER TABLE __s.__t ALTER COLUMN __c SET NOT NULL", **names, __c=column), line
        )
        self._contract(fill("ALTER TABLE __s.__t DROP CONSTRAINT __k", **names, __k=check), line)
        self.summary.append(
            f"{table.facts.schema}.{table.facts.name}.{column} checked NOT NULL now (a validated"
            " CHECK); contract makes it NOT NULL without a scan"
        )

    def _drop_column(self, table: _Table, column: str, line: int, names: dict[str, Any]) -> None:
        facts = table.facts.column(column)
        if facts is not None and facts.not_null and facts.default is None:
            # The new code's INSERTs do not name the column: it must accept NULL meanwhile.
            self._setup(
                fill("ALTER TABLE __s.__t ALTER COLUMN __c DROP NOT NULL", **names, __c=column),
                line,
            )
            self._undo(
                fill("ALTER TABLE __s.__t ALTER COLUMN __c SET NOT NULL", **names, __c=column), line
            )
        self._contract(fill("ALTER TABLE __s.__t DROP COLUMN __c", **names, __c=column), line)
        shown = f"{table.facts.schema}.{table.facts.name}.{column}"
        self.summary.append(f"{shown} stays for the old code until contract drops it")
        self.removes.append(f"column {shown}")

    def _add_column(self, table: _Table, change: Change, names: dict[str, Any]) -> None:
        type_node = parse_type(change.type_sql)
        line, column = change.line, change.column
        add = _tree(
            fill("ALTER TABLE __s.__t ADD COLUMN __c __ty", **names, __c=column, __ty=type_node)
        )
        undo = fill("ALTER TABLE __s.__t DROP COLUMN IF EXISTS __c", **names, __c=column)
        if change.default is None:  # no default, or a constant one: instant, as written
            constraints: list[Any] = []
            if change.definition:
                constraints.append(
                    ast.Constraint(
                        contype=CONSTR.CONSTR_DEFAULT, raw_expr=parse_expression(change.definition)
                    )
                )
            if change.not_null:
                constraints.append(ast.Constraint(contype=CONSTR.CONSTR_NOTNULL))
            add.cmds[0].def_.constraints = tuple(constraints) or None
            self._setup(deparse(add), line)
            self._undo(undo, line)
            self.summary.append(f"line {line}: ADD COLUMN {column} runs as written (instant)")
            return
        self._setup(deparse(add), line)
        self._undo(undo, line)
        default = _tree(
            fill(
                "ALTER TABLE __s.__t ALTER COLUMN __c SET DEFAULT __d", **names, __c=column, __d="d"
            )
        )
        value = parse_expression(change.default)
        default.cmds[0].def_ = value
        self._setup(deparse(default), line)
        backfill = _tree(
            fill("UPDATE __s.__t SET __c = __d WHERE __c IS NULL", **names, __c=column, __d="d")
        )
        backfill.targetList[0].val = value
        self._later(deparse(backfill), line, backfill=True)
        if change.not_null:
            check = artifact(column, "nn", self.version)
            self._not_valid_check(names, check, column, line)
            self._contract(
                fill("ALTER TABLE __s.__t ALTER COLUMN __c SET NOT NULL", **names, __c=column), line
            )
            self._contract(
                fill("ALTER TABLE __s.__t DROP CONSTRAINT __k", **names, __k=check), line
            )
        self.summary.append(
            f"line {line}: {column} added with its default for new rows; existing rows filled"
            " in batches"
        )

    def _constraint(self, table: _Table, change: Change, names: dict[str, Any]) -> None:
        definition = _tree(f"ALTER TABLE t ADD {change.definition}").cmds[0].def_
        line, name = change.line, change.constraint
        undo = fill("ALTER TABLE __s.__t DROP CONSTRAINT IF EXISTS __k", **names, __k=name)
        if definition.contype == CONSTR.CONSTR_UNIQUE:
            index = artifact(name, "uq", self.version)
            columns = tuple(k.sval for k in definition.keys)
            stmt = _tree(
                fill(
                    "CREATE UNIQUE INDEX CONCURRENTLY __i ON __s.__t (__x)",
                    **names,
                    __i=index,
                    __x="x",
                )
            )
            stmt.indexParams = tuple(
                ast.IndexElem(
                    name=c,
                    ordering=enums.SortByDir.SORTBY_DEFAULT,
                    nulls_ordering=enums.SortByNulls.SORTBY_NULLS_DEFAULT,
                )
                for c in columns
            )
            stmt.nulls_not_distinct = definition.nulls_not_distinct
            self._later(
                deparse(stmt),
                line,
                transactional=False,
                concurrent_index=(table.facts.schema, index),
            )
            self._later(
                fill(
                    "ALTER TABLE __s.__t ADD CONSTRAINT __k UNIQUE USING INDEX __i",
                    **names,
                    __k=name,
                    __i=index,
                ),
                line,
            )
            self._undo(
                fill("DROP INDEX IF EXISTS __s.__i", __s=table.facts.schema, __i=index), line
            )
            self._undo(undo, line)
            self.summary.append(f"line {line}: UNIQUE {name} built concurrently, then attached")
            return
        definition.skip_validation = True
        definition.initially_valid = False
        stmt = _tree(fill("ALTER TABLE __s.__t ADD CONSTRAINT k CHECK (true)", **names))
        stmt.cmds[0].def_ = definition
        self._setup(deparse(stmt), line)
        self._later(fill("ALTER TABLE __s.__t VALIDATE CONSTRAINT __k", **names, __k=name), line)
        self._undo(undo, line)
        self.summary.append(f"line {line}: {name} added NOT VALID, then validated on its own")


#: Types a sequence may be declared AS: a widened key's sequence is widened with it.
_SEQUENCE_TYPES = frozenset({"smallint", "integer", "bigint"})


def _range_var(name: str) -> Any:
    """The RangeVar of a relation name as the server prints it (regclass text: quoted and
    qualified as needed), read by the parser."""
    return _tree(f"SELECT FROM {name}").fromClause[0]


def _quoted(name: str) -> str:
    """``name`` as an SQL identifier, printed by the deparser."""
    return deparse(column_ref(name))


def _string(value: str) -> Any:
    return ast.A_Const(val=ast.String(sval=value), isnull=False)


def _index_param(param: Any, pair: _Pair, renamed: Mapping[str, Any]) -> Any:
    if param.name == pair.old.name:
        param.name = pair.shadow
    if param.expr is not None:
        param.expr = renamed_columns(param.expr, renamed)
    return param


def _distinct(left: Any, right: Any) -> Any:
    return ast.A_Expr(
        kind=enums.A_Expr_Kind.AEXPR_DISTINCT, name=(ast.String(sval="="),), lexpr=left, rexpr=right
    )


def _watched(pairs: Sequence[_Pair]) -> tuple[str, ...]:
    """The columns whose change fires the trigger: each pair's two, and what ``up`` reads."""
    found: list[str] = []
    for pair in pairs:
        for name in (
            pair.old.name,
            pair.shadow,
            *referenced_columns(pair.up or column_ref(pair.old.name)),
        ):
            if name not in found:
                found.append(name)
    return tuple(found)


def _sync_function(schema: str, name: str, pairs: Sequence[_Pair]) -> str:
    """CREATE FUNCTION of the trigger that keeps every pair of the table equal (the module's
    docstring gives its rule). The body's expressions are printed from trees; only the
    PL/pgSQL around them is fixed text."""
    lines = ["BEGIN"]
    for pair in pairs:
        old = deparse(column_ref("new", pair.old.name))
        new = deparse(column_ref("new", pair.shadow))
        before = deparse(column_ref("old", pair.shadow))
        up_node = pair.up if pair.up is not None else column_ref(pair.old.name)
        up = deparse(_over_new(up_node))
        if not pair.writable:
            lines.append(f"  {new} := {up};")
            continue
        down_node = pair.down if pair.down is not None else column_ref(pair.new)
        down = deparse(renamed_columns(down_node, {pair.new: column_ref("new", pair.shadow)}))
        lines += [
            "  IF TG_OP = 'INSERT' THEN",
            f"    IF {new} IS NULL THEN {new} := {up}; ELSE {old} := {down}; END IF;",
            f"  ELSIF {new} IS DISTINCT FROM {before} THEN",
            f"    {old} := {down};",
            "  ELSE",
            f"    {new} := {up};",
            "  END IF;",
        ]
    lines += ["  RETURN NEW;", "END"]
    stmt = _tree(
        fill(
            "CREATE FUNCTION __s.__f() RETURNS trigger LANGUAGE plpgsql AS 'x'",
            __s=schema,
            __f=name,
        )
    )
    for option in stmt.options:
        if option.defname == "as":
            option.arg = (ast.String(sval="\n".join(lines) + "\n"),)
    return deparse(stmt)


def _over_new(node: Any) -> Any:
    """``node`` with its unqualified column references read from the trigger's NEW row."""
    return renamed_columns(
        node, {name: column_ref("new", name) for name in referenced_columns(node)}
    )
