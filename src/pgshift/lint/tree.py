"""Reading libpg_query's parse tree, as pglast returns it in JSON, without regexes on SQL.

Why JSON: pglast's ``parse_sql_json`` hands over the very tree PostgreSQL's parser builds, in
about a tenth of the time ``parse_sql`` takes to turn it into Python objects; linting 10,000
files stays within reach of a linter written in Rust.  Every node is ``{"TypeName": {...}}``;
fields that are false, zero or empty are left out, so every lookup has a default.
Locations are byte offsets into the UTF-8 text of the whole file.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pgshift.source import sql

Node = dict[str, Any]


@dataclass(frozen=True)
class TableName:
    """A table as written: schema when given, and the name as the parser folded it."""

    schema: str | None
    name: str

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name

    def same(self, other: TableName) -> bool:
        """Same table, when a missing schema is read as "whatever search_path finds"."""
        if self.name != other.name:
            return False
        return self.schema is None or other.schema is None or self.schema == other.schema


def unwrap(wrapped: Mapping[str, Any]) -> tuple[str, Node]:
    """``{"IndexStmt": {...}}`` -> ``("IndexStmt", {...})``, as the loader reads them."""
    kind, fields = sql.unwrap(wrapped)
    return kind, fields if isinstance(fields, dict) else dict(fields)


def table(rangevar: Node | None) -> TableName | None:
    """The TableName of a RangeVar (bare or wrapped), or None."""
    if not rangevar:
        return None
    if "RangeVar" in rangevar:
        rangevar = rangevar["RangeVar"]
    name = rangevar.get("relname")
    if not isinstance(name, str):
        return None
    schema = rangevar.get("schemaname")
    return TableName(schema if isinstance(schema, str) else None, name)


def strings(items: list[Node] | None) -> list[str]:
    """The ``sval`` of each String node of a list (qualified names, column lists)."""
    out: list[str] = []
    for item in items or ():
        value = item.get("String", {}).get("sval")
        if isinstance(value, str):
            out.append(value)
    return out


def type_name(column: Node) -> str:
    """The bare type name of a ColumnDef ("int4", "varchar", "serial"), lower case."""
    names = strings(column.get("typeName", {}).get("names"))
    return names[-1].lower() if names else ""


def has_typmods(column: Node) -> bool:
    return bool(column.get("typeName", {}).get("typmods"))


def constraints(column: Node) -> list[Node]:
    """The inline constraints of a ColumnDef, unwrapped."""
    return [c.get("Constraint", {}) for c in column.get("constraints") or ()]


def alter_commands(stmt: Node) -> Iterator[tuple[str, Node]]:
    """(subtype, command) for each command of an ALTER TABLE on a table."""
    if stmt.get("objtype", "OBJECT_TABLE") != "OBJECT_TABLE":
        return
    for wrapped in stmt.get("cmds") or ():
        cmd = wrapped.get("AlterTableCmd", {})
        yield str(cmd.get("subtype", "")), cmd


def column_def(cmd: Node) -> Node:
    """The ColumnDef of an ALTER TABLE command (ADD COLUMN, ALTER COLUMN TYPE), or {}."""
    definition = cmd.get("def") or {}
    value = definition.get("ColumnDef")
    return value if isinstance(value, dict) else {}


def constraint_def(cmd: Node) -> Node:
    """The Constraint of an ALTER TABLE ... ADD CONSTRAINT command, or {}."""
    definition = cmd.get("def") or {}
    value = definition.get("Constraint")
    return value if isinstance(value, dict) else {}


def def_names(options: list[Node] | None) -> set[str]:
    """Names of the DefElem options of a statement, e.g. {"full", "concurrently"}."""
    out: set[str] = set()
    for item in options or ():
        name = item.get("DefElem", {}).get("defname")
        if isinstance(name, str):
            out.add(name.lower())
    return out


def walk(value: Any) -> Iterator[tuple[str, Node]]:
    """Every node below ``value`` as (type, fields), depth first, in source order."""
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if len(item) == 1:
                key, inner = next(iter(item.items()))
                if key[:1].isupper() and isinstance(inner, dict):
                    yield key, inner
                    stack.append(inner)
                    continue
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))


def location(node: Node, default: int | None = None) -> int | None:
    value = node.get("location")
    return value if isinstance(value, int) and value >= 0 else default


@dataclass(frozen=True)
class ColumnType:
    """A column's declared type as the parser normalised it: ``varchar(20)`` is
    ``ColumnType("varchar", (20,))``; ``typmods`` is None when one is not a plain integer."""

    name: str
    typmods: tuple[int, ...] | None = ()
    array: bool = False

    def __str__(self) -> str:
        mods = "" if not self.typmods else "(" + ",".join(map(str, self.typmods)) + ")"
        return f"{self.name}{mods}{'[]' if self.array else ''}"


def column_type(column: Node) -> ColumnType | None:
    """The ColumnType of a ColumnDef, or None when it has no type (a partition's column)."""
    type_node = column.get("typeName") or {}
    names = strings(type_node.get("names"))
    if not names:
        return None
    mods: list[int] = []
    for item in type_node.get("typmods") or ():
        value = item.get("A_Const", {}).get("ival")  # {} for 0: false fields are left out
        if not isinstance(value, dict):
            return ColumnType(names[-1].lower(), None, bool(type_node.get("arrayBounds")))
        mods.append(int(value.get("ival", 0)))
    return ColumnType(names[-1].lower(), tuple(mods), bool(type_node.get("arrayBounds")))


def qualified(items: list[Node] | None) -> str:
    """A dotted name from a list of String nodes: ``s.f``."""
    return ".".join(strings(items))


#: PostgreSQL's identifier limit in bytes (NAMEDATALEN - 1).
MAX_NAME_BYTES = 63


def check_constraint_name(table: str, column: str) -> str:
    """The name PostgreSQL chooses for an unnamed CHECK on one column: ``table_column_check``.

    ChooseConstraintName -> makeObjectName (src/backend/commands/indexcmds.c): when the whole
    name is longer than 63 bytes, the longer of the two parts loses a byte at a time (never
    cutting a character in half). A name already taken gets a number appended; that case is
    left unknown here (the rules then say they cannot tell).
    """
    label = "check"
    first, second = table.encode(), column.encode()
    room = MAX_NAME_BYTES - len(label) - 2
    keep1, keep2 = len(first), len(second)
    while keep1 + keep2 > room:
        if keep1 > keep2:
            keep1 -= 1
        else:
            keep2 -= 1
    return f"{_clip(first, keep1)}_{_clip(second, keep2)}_{label}"


def _clip(raw: bytes, length: int) -> str:
    """The longest whole-character prefix of ``raw`` of at most ``length`` bytes."""
    return raw[:length].decode("utf-8", errors="ignore")
