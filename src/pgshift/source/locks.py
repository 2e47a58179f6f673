"""The table-level locks each statement takes, as `rollback dry-run` shows them.

Why it is shaped this way: the answer depends only on the kind of statement, so it is one small
function per kind, looked up in a table, rather than one long match whose arms share locals.
It is pure (SQL text in, "MODE on table" lines out), and pglast is imported on first use only,
because `import pgshift` must stay light and only the dry run asks for locks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from functools import cache
from typing import Any

ACCESS_EXCLUSIVE = "ACCESS EXCLUSIVE"
SHARE_UPDATE_EXCLUSIVE = "SHARE UPDATE EXCLUSIVE"
SHARE_ROW_EXCLUSIVE = "SHARE ROW EXCLUSIVE"

_CATALOG_ONLY = ("no table lock (catalog change only)",)
_UNPARSED = ("unknown (does not parse)",)

# ALTER TABLE takes the strongest mode any of its subcommands needs.
_STRENGTH = {SHARE_UPDATE_EXCLUSIVE: 0, SHARE_ROW_EXCLUSIVE: 1, ACCESS_EXCLUSIVE: 2}

Locks = tuple[str, ...]
# pglast's nodes are untyped (no stubs), so a handler takes the node as Any.
Handler = Callable[[Any], Locks]


def statement_locks(sql: str) -> Locks:
    """The table-level locks a statement takes, as "MODE on table", read from the parser.

    Covers the statements rollback files are made of; others say what they touch in general.
    """
    from pglast import parse_sql

    try:
        (raw,) = parse_sql(sql)
    except Exception:  # the loader already reported it; the dry run shows what it can
        return _UNPARSED
    node = raw.stmt
    return _handlers().get(type(node), _catalog_only)(node)


@cache
def _handlers() -> dict[type, Handler]:
    """Statement node class -> its handler; built on first use so pglast loads only then."""
    from pglast import ast

    return {
        ast.DropStmt: _drop,
        ast.AlterTableStmt: _alter_table,
        ast.IndexStmt: _create_index,
        ast.RenameStmt: _rename,
        ast.TruncateStmt: _truncate,
        ast.InsertStmt: _write,
        ast.UpdateStmt: _write,
        ast.DeleteStmt: _write,
        ast.CreateStmt: _create_table,
        ast.CreateTrigStmt: _create_trigger,
        ast.VacuumStmt: _vacuum,
        ast.RefreshMatViewStmt: _refresh,
        ast.SelectStmt: _select,
    }


# -- names -----------------------------------------------------------------------------------------


def _name(range_var: Any) -> str:
    """A RangeVar as written: schema-qualified only when the statement qualified it."""
    if range_var is None:
        return "?"
    schema = getattr(range_var, "schemaname", None)
    return f"{schema}.{range_var.relname}" if schema else str(range_var.relname)


def _object_name(parts: Any) -> str:
    """A dotted name from DROP's list of String parts (or a single one)."""
    names = [getattr(p, "sval", None) for p in (parts if isinstance(parts, tuple) else (parts,))]
    return ".".join(n for n in names if n) or "?"


# -- one handler per statement kind ----------------------------------------------------------------


def _catalog_only(_: Any) -> Locks:
    return _CATALOG_ONLY


@cache
def _dropped_kinds() -> dict[Any, str]:
    """DROP's object types that lock a relation, and how the lock line names them."""
    from pglast.enums import ObjectType

    return {
        ObjectType.OBJECT_TABLE: "table",
        ObjectType.OBJECT_VIEW: "view",
        ObjectType.OBJECT_MATVIEW: "materialized view",
        ObjectType.OBJECT_SEQUENCE: "sequence",
        ObjectType.OBJECT_INDEX: "index",
        ObjectType.OBJECT_FOREIGN_TABLE: "foreign table",
    }


def _drop(node: Any) -> Locks:
    kind = _dropped_kinds().get(node.removeType)
    objects = node.objects or ()
    if kind is None:  # a function, type, schema...: no relation is locked
        return _CATALOG_ONLY if objects else ()
    return tuple(_drop_lock(kind, bool(node.concurrent), _object_name(obj)) for obj in objects)


def _drop_lock(kind: str, concurrent: bool, name: str) -> str:
    if kind != "index":
        return f"{ACCESS_EXCLUSIVE} on {kind} {name}"
    if concurrent:
        return f"{SHARE_UPDATE_EXCLUSIVE} on the table of {name}"
    return f"{ACCESS_EXCLUSIVE} on index {name} and its table"


def _alter_table(node: Any) -> Locks:
    mode = SHARE_UPDATE_EXCLUSIVE
    referenced: list[str] = []
    for cmd in node.cmds or ():
        cmd_mode, other = _alter_table_cmd(cmd)
        mode = max(mode, cmd_mode, key=_STRENGTH.__getitem__)
        if other is not None:
            referenced.append(other)
    return (f"{mode} on {_name(node.relation)}", *referenced)


@cache
def _share_update_subtypes() -> frozenset[Any]:
    """ALTER TABLE subcommands that need no more than SHARE UPDATE EXCLUSIVE.

    As tablecmds.c's AlterTableGetLockLevel decides them: per-column statistics and options
    (``ALTER COLUMN ... SET (n_distinct = ...)``, AT_SetOptions / AT_ResetOptions) included.
    """
    from pglast.enums import AlterTableType as At

    return frozenset(
        {
            At.AT_ValidateConstraint,
            At.AT_SetStatistics,
            At.AT_SetOptions,
            At.AT_ResetOptions,
            At.AT_SetRelOptions,
            At.AT_ResetRelOptions,
            At.AT_ClusterOn,
            At.AT_DropCluster,
            At.AT_AttachPartition,
        }
    )


def _alter_table_cmd(cmd: Any) -> tuple[str, str | None]:
    """The mode one subcommand needs on its table, and the lock it takes on another table.

    Only a foreign key locks a second table (the one it references).
    """
    from pglast import ast
    from pglast.enums import AlterTableType as At
    from pglast.enums import ConstrType

    sub = cmd.subtype
    if sub in _share_update_subtypes():
        return SHARE_UPDATE_EXCLUSIVE, None
    constraint: Any = getattr(cmd, "def_", None)
    if (
        sub == At.AT_AddConstraint
        and isinstance(constraint, ast.Constraint)
        and constraint.contype == ConstrType.CONSTR_FOREIGN
    ):
        return SHARE_ROW_EXCLUSIVE, f"{SHARE_ROW_EXCLUSIVE} on {_name(constraint.pktable)}"
    if sub in (At.AT_EnableTrig, At.AT_DisableTrig):
        return SHARE_ROW_EXCLUSIVE, None
    return ACCESS_EXCLUSIVE, None


def _create_index(node: Any) -> Locks:
    mode = SHARE_UPDATE_EXCLUSIVE if node.concurrent else "SHARE"
    return (f"{mode} on {_name(node.relation)}",)


def _rename(node: Any) -> Locks:
    if node.relation is None:  # renaming a type, schema...: no relation is locked
        return _CATALOG_ONLY
    return (f"{ACCESS_EXCLUSIVE} on {_name(node.relation)}",)


def _truncate(node: Any) -> Locks:
    return tuple(f"{ACCESS_EXCLUSIVE} on {_name(r)}" for r in node.relations or ())


def _write(node: Any) -> Locks:
    return (f"ROW EXCLUSIVE on {_name(node.relation)}",)


def _create_table(node: Any) -> Locks:
    """A new table locks nothing that exists, except the tables its foreign keys reference."""
    from pglast.enums import ConstrType

    locks = tuple(
        f"{SHARE_ROW_EXCLUSIVE} on {_name(constraint.pktable)}"
        for constraint in _table_constraints(node.tableElts or ())
        if constraint.contype == ConstrType.CONSTR_FOREIGN
    )
    return locks or ("none on existing tables (creates a new one)",)


def _table_constraints(elements: Iterable[Any]) -> Iterator[Any]:
    """Each column's constraints, then each table constraint, in the order written."""
    from pglast import ast

    for element in elements:
        yield from getattr(element, "constraints", None) or ()
        if isinstance(element, ast.Constraint):
            yield element


def _create_trigger(node: Any) -> Locks:
    return (f"{SHARE_ROW_EXCLUSIVE} on {_name(node.relation)}",)


def _vacuum(node: Any) -> Locks:
    full = any(getattr(o, "defname", "") == "full" for o in node.options or ())
    mode = ACCESS_EXCLUSIVE if full else SHARE_UPDATE_EXCLUSIVE
    return tuple(f"{mode} on {_name(rel.relation)}" for rel in node.rels or ())


def _refresh(node: Any) -> Locks:
    mode = "EXCLUSIVE" if node.concurrent else ACCESS_EXCLUSIVE
    return (f"{mode} on {_name(node.relation)}",)


def _select(_: Any) -> Locks:
    return ("ACCESS SHARE on the tables it reads",)


__all__ = ["statement_locks"]
