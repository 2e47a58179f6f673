"""What a rule may know while it looks at a statement: the file so far, the project so far.

"Table created earlier in the same file" is what keeps index and constraint rules quiet on
a brand-new, empty table; the project state carries knowledge across files in plan order
(a NOT NULL check validated in an earlier migration makes a later SET NOT NULL cheap).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pgshift.lint.tree import Node, TableName

if TYPE_CHECKING:
    from pgshift.lint.finding import Finding
    from pgshift.model import Header, Migration, Statement

#: The newest PostgreSQL major version the rules know about; the default target.
LATEST_MAJOR = 18


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

    def not_null_proven(self, table: TableName, column: str) -> bool:
        return any(t.same(table) and c == column for t, c in self.validated_not_null)


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
        self._ascii = text.isascii()
        self._encoded: bytes | None = None

    def is_new(self, table: TableName | None) -> bool:
        """True when ``table`` was created earlier in this file (so it is still empty)."""
        return table is not None and any(t.same(table) for t in self.new_tables)

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
