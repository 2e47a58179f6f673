"""What a rule may know while it looks at a statement: the file so far, the project so far.

"Table created earlier in the same file" is what keeps index and constraint rules quiet on
a brand-new, empty table; the project state carries knowledge across files in plan order
(a NOT NULL check validated in an earlier migration makes a later SET NOT NULL cheap).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pgshift.lint import LATEST_MAJOR
from pgshift.lint.tree import ColumnType, Node, TableName

if TYPE_CHECKING:
    from pgshift.lint.finding import Finding
    from pgshift.model import Header, Migration, Statement


@dataclass(frozen=True)
class Stmt:
    """A statement of the file with its parse tree (the fields of its top node)."""

    statement: Statement
    kind: str
    node: Node


@dataclass
class ProjectState:
    """Facts that outlive one file, gathered in plan order."""

    # (table, column) with a validated CHECK (column IS NOT NULL): SET NOT NULL skips the scan.
    validated_not_null: list[tuple[TableName, str]] = field(default_factory=list)
    # constraint name -> (table, column) of a NOT VALID CHECK (column IS NOT NULL) not yet validated
    pending_not_null: dict[str, tuple[TableName, str]] = field(default_factory=dict)
    # names of constraints the migrations added that prove no column NOT NULL (FKs, other CHECKs)
    other_constraints: set[str] = field(default_factory=set)
    # (table, constraint) validated by VALIDATE CONSTRAINT although no migration says what it
    # is (made by hand, or before the history): it may be the CHECK that makes SET NOT NULL cheap
    validated_unknown: list[tuple[TableName, str]] = field(default_factory=list)

    # table name -> [(table, {column: declared type})]: what ALTER COLUMN TYPE changes from
    columns: dict[str, list[tuple[TableName, dict[str, ColumnType]]]] = field(default_factory=dict)
    # tables with a CREATE POLICY: enabling row-level security on them denies nothing by surprise
    policies: list[TableName] = field(default_factory=list)

    def not_null_proven(self, table: TableName, column: str) -> bool:
        return any(t.same(table) and c == column for t, c in self.validated_not_null)

    def unknown_validated(self, table: TableName) -> list[str]:
        """Constraints of ``table`` validated without the migrations saying what they check."""
        return [name for t, name in self.validated_unknown if t.same(table)]

    def table_columns(self, table: TableName, *, create: bool = False) -> dict[str, ColumnType]:
        """The known column types of ``table`` ({} when nothing is known of it)."""
        entries = (
            self.columns.setdefault(table.name, []) if create else self.columns.get(table.name, [])
        )
        for known, cols in entries:
            if known.same(table):
                return cols
        if not create:
            return {}
        fresh: dict[str, ColumnType] = {}
        entries.append((table, fresh))
        return fresh

    def forget_table(self, table: TableName) -> dict[str, ColumnType]:
        """Drop what is known of ``table`` (dropped, renamed, or created anew); return it."""
        entries = self.columns.get(table.name, [])
        for i, (known, cols) in enumerate(entries):
            if known.same(table):
                del entries[i]
                return cols
        return {}

    def column_type(self, table: TableName, column: str) -> ColumnType | None:
        return self.table_columns(table).get(column)

    def has_policy(self, table: TableName) -> bool:
        return any(t.same(table) for t in self.policies)


class LintContext:
    """The state of one file being linted, updated by the engine after each statement."""

    def __init__(
        self,
        file: str,
        text: str,
        *,
        pg_major: int = LATEST_MAJOR,
        rollback: bool = False,
        transactional: bool = True,
        project: ProjectState | None = None,
    ) -> None:
        self.file = file
        self.text = text
        self.pg_major = pg_major
        self.rollback = rollback
        self.transactional = transactional
        self.project = project if project is not None else ProjectState()
        self.new_tables: list[TableName] = []
        self.new_indexes: set[str] = set()
        self.altered_tables: list[TableName] = []
        self.not_valid: dict[str, TableName] = {}  # constraints added NOT VALID in this file
        self.statements: tuple[Stmt, ...] = ()  # the whole file, for rules that look ahead
        self._ascii = text.isascii()
        self._encoded: bytes | None = None

    def is_new(self, table: TableName | None) -> bool:
        """True when ``table`` was created earlier in this file (so it is still empty)."""
        return table is not None and any(t.same(table) for t in self.new_tables)

    def later(self, stmt: Stmt) -> Iterator[Stmt]:
        """The statements of the file after ``stmt``."""
        return (s for s in self.statements if s.statement.index > stmt.statement.index)

    def was_altered(self, table: TableName | None) -> bool:
        return table is not None and any(t.same(table) for t in self.altered_tables)

    def char_index(self, byte_offset: int) -> int:
        """A parse-tree location (bytes of UTF-8) as an index into the text."""
        if self._ascii:
            return byte_offset
        if self._encoded is None:
            self._encoded = self.text.encode("utf-8")
        return len(self._encoded[:byte_offset].decode("utf-8", errors="ignore"))


@dataclass(frozen=True)
class FileFacts:
    """What file-level rules see: the header, and what the statement rules found."""

    file: str
    header: Header
    statements: tuple[Statement, ...]
    rollback: bool
    kept: tuple[Finding, ...]  # statement findings that survived ignores
    raw: tuple[Finding, ...]  # statement findings before ignores
    migration: Migration | None = None  # set when linting a project
    has_problems: bool = False  # the loader reported problems for this file
