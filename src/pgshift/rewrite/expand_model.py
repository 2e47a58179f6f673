"""The values of expand and contract: what a migration asks, the steps of each phase, and
what the applied row keeps of them (rewrite/expand.py derives them)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pglast.parser import ParseError

from pgshift.model import BACKFILL_KIND, Statement
from pgshift.rewrite.backfill import Relation
from pgshift.rewrite.template import statement_tree

#: Marks every object expand creates, so the catalog reader can leave them out of the facts
#: (a re-plan after a kill must derive the same steps) and a person can tell them apart.
MARK = "pgshift"
EXPAND, CONTRACT, UNDO = "expand", "contract", "undo"


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
        kind = BACKFILL_KIND if self.backfill else _kind_of(self.sql)
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


def _kind_of(sql: str) -> str:
    try:
        return type(statement_tree(sql)).__name__
    except (ParseError, IndexError):
        return "Unknown"


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
