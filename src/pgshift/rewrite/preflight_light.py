"""Pre-flight's results, and the results of a plan that only creates tables and fills them,
which need no parser and no catalog read.

Why it exists: pglast's import (~20 ms) and the module deriving the checks are most of what
pre-flight costs a fresh `up` whose migrations only create tables, index them and insert into
them (the usual first deploy, and bench/bench_up.py's workload). Such a plan implies no check:
every table is new, so nothing of it is on the target to read, and each index build is "not
estimated". The loader's table heads (rewrite/preflight_head.py, kept in the statements memo)
say exactly which plans those are, so they are answered here from the heads alone, with the
very results the full derivation (rewrite/preflight.py) gives them; any other plan goes there.
A unit test compares the two on such plans.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from pgshift.rewrite.preflight_head import READ_KINDS, Head

if TYPE_CHECKING:
    from pgshift.model import Migration

#: Check kinds, as `up --json` names them ("check").
NOT_NULL = "not-null"
EMPTY_TABLE = "empty-table"
UNIQUE = "unique"
CHECK = "check"
FOREIGN_KEY = "foreign-key"
TYPE_CHANGE = "type-change"
EXPECTED_DURATION = "expected-duration"

#: Statuses of a result; "warn" only for an expected duration over 3x @estimated-duration.
PASS, FAIL, NOT_CHECKED, WARN = "pass", "fail", "not-checked", "warn"


@dataclass(frozen=True)
class PreflightResult:
    """The outcome of one check: pass, fail or not-checked (warn: an expected duration)."""

    file: str
    line: int
    check: str
    status: str
    count: int | None = None
    examples: tuple[str, ...] = ()
    detail: str = ""
    duration_ms: float | None = None  # how long the check's query took
    table: str = ""
    migration: str = ""
    capped: bool = False  # count is a lower bound: the check stopped at CAP violators
    expected_ms: int | None = None  # expected duration of the statement itself

    def as_json(self) -> dict[str, object]:
        """The shape `up --json` carries under "preflight"."""
        return {
            "file": self.file,
            "line": self.line,
            "check": self.check,
            "status": self.status,
            "count": self.count,
            "examples": list(self.examples),
            "detail": self.detail,
            "duration_ms": None if self.duration_ms is None else round(self.duration_ms, 1),
        }


class Headed(Protocol):
    """A pending statement as the light path reads it (rewrite.preflight.Pending is one)."""

    @property
    def file(self) -> str: ...
    @property
    def line(self) -> int: ...
    @property
    def migration(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def head(self) -> Head | None: ...


@dataclass(frozen=True)
class HeadedStatement:
    """One statement of a pending migration, as much of it as the light path reads."""

    file: str
    line: int
    migration: str
    kind: str
    head: Head | None


def headed(migrations: Sequence[Migration]) -> list[HeadedStatement]:
    """The statements of ``migrations`` in plan order, with the kinds and table heads the
    loader gave them (the same fields ops/preflight.pending_of hands the full path)."""
    return [
        HeadedStatement(str(m.path), s.line, m.name, s.kind, s.table_head)
        for m in migrations
        for s in m.statements
    ]


#: Row changes whose result is nothing when their table is new (rewrite/preflight.py
#: _record_rows returns before reading them); MERGE is left to the full path.
_NEW_TABLE_ROWS = frozenset({"InsertStmt", "UpdateStmt", "DeleteStmt"})


def new_tables_results(items: Iterable[Headed]) -> list[PreflightResult] | None:
    """The pre-flight results of ``items`` when they only create tables (CREATE TABLE without
    IF NOT EXISTS), build plain indexes on tables created before them, and change rows of such
    tables, with any statement of a kind pre-flight never reads in between; None otherwise
    (the full derivation then answers).

    Such a plan reads nothing from the target and implies no check (derive_checks finds none:
    no ALTER TABLE, no unique index, every row change is of a new table), and each index build
    is "not estimated", since its table is not on the target yet (duration_results).
    """
    created: set[tuple[str | None, str]] = set()
    out: list[PreflightResult] = []
    for item in items:
        kind, head = item.kind, item.head
        if not kind:
            return None  # the loader did not classify it: only a parse can say
        if kind not in READ_KINDS:
            continue  # no pass reads it (Pending.trees is empty)
        if head is None:
            return None  # read for more than its table: the full derivation
        schema, name, _inh, _persistence, if_not_exists = head
        table = (schema or None, name)
        if kind == "CreateStmt":
            if if_not_exists:
                return None  # the table may be on the target already
            created.add(table)
        elif table not in created:
            return None  # a table on the target: its facts are needed
        elif kind == "IndexStmt":
            shown = f"{table[0]}.{name}" if table[0] else name
            out.append(
                PreflightResult(
                    file=item.file,
                    line=item.line,
                    check=EXPECTED_DURATION,
                    status=NOT_CHECKED,
                    detail=f"index build of {shown}: not estimated: the table is not on the target",
                    table=shown,
                    migration=item.migration,
                )
            )
        elif kind not in _NEW_TABLE_ROWS:
            return None
    return out
