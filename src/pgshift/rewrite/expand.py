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

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from pglast import ast, enums, parse_sql
from pglast.parser import ParseError

from pgshift.model import Statement, TableFacts
from pgshift.rewrite.backfill import Relation
from pgshift.rewrite.expand_model import (
    CONTRACT,
    EXPAND,
    MARK,
    UNDO,
    Change,
    Expansion,
    NotExpandable,
    OldShape,
    PhaseStep,
    artifact,
)
from pgshift.rewrite.expand_pairs import Deriver, TableChanges
from pgshift.rewrite.expand_steps import Phases
from pgshift.rewrite.template import deparse, fill, is_node

AT = enums.AlterTableType
CONSTR = enums.ConstrType

__all__ = [
    "CONTRACT",
    "EXPAND",
    "MARK",
    "UNDO",
    "Change",
    "Expansion",
    "NotExpandable",
    "OldShape",
    "PhaseStep",
    "artifact",
    "changes_of",
    "expansion",
    "tables_of",
]


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


def expansion(
    version: str,
    changes: Sequence[Change],
    facts: Mapping[Relation, TableFacts],
    *,
    down: str | None = None,
    down_line: int = 1,
    batch_key: Sequence[str] = (),
) -> Expansion:
    """The phases of migration ``version`` from its ``changes`` and the ``facts`` of the
    tables they name (read before anything of the expansion exists, or with its artifacts
    left out), or NotExpandable naming the change that cannot be served.

    ``down`` is the header's `@expand-down` (on line ``down_line``): the way back from a
    renamed and retyped column's new values; refused when no such column uses it (a type
    change alone keeps the old column, whose type checks every write). ``batch_key`` is the
    header's `@batch-key`: the copy of a table without a primary key goes along it."""
    deriver = Deriver(version, facts, down)
    for change in changes:
        deriver.add(change)
    used = any(p.writable and p.down_given for t in deriver.tables.values() for p in t.pairs)
    for table in deriver.tables.values():
        copies = table.pairs or any(c.default is not None for c in table.added)
        if copies and not table.facts.key and not batch_key:
            line = table.pairs[0].line if table.pairs else table.added[0].line
            raise NotExpandable(
                line,
                f"{table.relation} has no primary key to copy its rows along in batches: give"
                " it one, or name a unique NOT NULL column with '-- @batch-key: column'",
            )
    if deriver.down is not None and not used:
        raise NotExpandable(
            down_line,
            "@expand-down is the way back for a column this migration renames and retypes, and"
            " there is none: a type change alone keeps the old column during the window, and"
            " its type checks every write",
        )
    builder = Phases(version)
    for change in deriver.as_is:
        builder.run_as_written(change)
    for table in deriver.tables.values():
        builder.table(table)
    result = builder.result(
        tuple(f"{t.facts.schema}.{t.facts.name}" for t in deriver.tables.values())
    )
    old = tuple(_old_shape(t) for t in deriver.tables.values())
    return replace(result, old_names=tuple(o for o in old if o.columns or o.table_renamed))


def _old_shape(table: TableChanges) -> OldShape:
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
