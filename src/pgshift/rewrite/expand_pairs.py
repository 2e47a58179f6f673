"""Which columns of which tables an expand-contract migration serves in two shapes: each
change read against the catalog facts, refused with the reason when contract could not carry
it over (rewrite/expand.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pgshift.model import ColumnFacts, TableFacts
from pgshift.rewrite.backfill import Relation
from pgshift.rewrite.expand_model import Change, NotExpandable, artifact
from pgshift.rewrite.template import (
    column_ref,
    parse_expression,
    referenced_columns,
    renamed_columns,
)


@dataclass
class ColumnPair:
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
    down_given: bool = False  # ``down`` is the header's `@expand-down`, not a cast


@dataclass
class TableChanges:
    facts: TableFacts
    relation: Relation
    pairs: list[ColumnPair] = field(default_factory=list)
    not_null: list[tuple[str, int]] = field(default_factory=list)  # (column as finally named, line)
    dropped: list[tuple[str, int]] = field(default_factory=list)
    added: list[Change] = field(default_factory=list)
    constraints: list[Change] = field(default_factory=list)
    renamed_to: str | None = None

    def pair(self, name: str) -> ColumnPair | None:
        return next((p for p in self.pairs if p.new == name), None)


class Deriver:
    def __init__(
        self, version: str, facts: Mapping[Relation, TableFacts], down: str | None
    ) -> None:
        self.version = version
        self.facts = facts
        self.down = parse_expression(down) if down else None
        self.tables: dict[Relation, TableChanges] = {}
        self.as_is: list[Change] = []

    def table(self, change: Change) -> TableChanges:
        found = self.tables.get(change.table)
        if found is None:
            facts = self.facts.get(change.table)
            if facts is None:
                raise NotExpandable(change.line, f"table {change.table} does not exist")
            if facts.partitioned and change.kind != "rename-table":
                raise NotExpandable(
                    change.line,
                    f"{change.table} is partitioned: its indexes cannot be built CONCURRENTLY"
                    " for the new shape; change its partitions' columns in a migration of"
                    " their own",
                )
            found = TableChanges(facts, change.table)
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

    def _column(
        self, table: TableChanges, name: str, line: int, *, dropped: bool = False
    ) -> ColumnFacts:
        column = table.facts.column(name)
        if column is None:
            raise NotExpandable(line, f"column {name} of {table.relation} does not exist")
        self._refuse_dependents(table, column, line, dropped=dropped)
        return column

    def _refuse_dependents(
        self, table: TableChanges, column: ColumnFacts, line: int, *, dropped: bool
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

    def _rename_column(self, table: TableChanges, change: Change) -> None:
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
            ColumnPair(
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

    def _retype(self, table: TableChanges, change: Change) -> None:
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
        given = down is self.down
        if existing is not None:
            existing.type_sql, existing.up, existing.down = change.type_sql, up, down
            existing.down_given = given
            return
        shadow = artifact(old.name, "new", self.version)
        table.pairs.append(
            ColumnPair(
                old,
                old.name,
                shadow,
                change.type_sql,
                up,
                down,
                False,
                change.line,
                old.not_null,
                given,
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

    def _set_not_null(self, table: TableChanges, change: Change) -> None:
        pair = table.pair(change.column)
        if pair is not None:  # the swap at contract makes the new column NOT NULL
            pair.not_null = True
            return
        self._column(table, change.column, change.line)
        table.not_null.append((change.column, change.line))

    def _drop_column(self, table: TableChanges, change: Change) -> None:
        self._column(table, change.column, change.line, dropped=True)
        table.dropped.append((change.column, change.line))

    def _add_column(self, table: TableChanges, change: Change) -> None:
        table.added.append(change)

    def _add_constraint(self, table: TableChanges, change: Change) -> None:
        table.constraints.append(change)

    def _rename_table(self, table: TableChanges, change: Change) -> None:
        if table.pairs or table.not_null or table.dropped or table.added or table.constraints:
            raise NotExpandable(change.line, f"rename {table.relation} in a migration of its own")
        table.renamed_to = change.new_name
