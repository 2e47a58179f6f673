"""Silencing rules: ``-- pgshift-ignore: code`` before a statement, ``@lint-ignore`` per file.

An ignore that silences nothing is reported itself (as squawk does): a stale ignore would
otherwise hide the next real problem on that statement.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from pgshift.lint.finding import Finding
from pgshift.lint.registry import finding_for
from pgshift.model import Header, Statement

UNUSED_IGNORE = "unused-ignore"


class Ignores:
    """The ignore codes of one file, and which of them were used."""

    def __init__(self, file: str, statements: Sequence[Statement], header: Header) -> None:
        self.file = file
        self.header = header
        self.per_statement = {s.index: s for s in statements if s.ignore}
        self.file_codes = tuple(dict.fromkeys(header.lint_ignore))
        self.used: set[tuple[int | None, str]] = set()

    def suppressed(self, statement: int | None, code: str) -> bool:
        """Whether ``code`` is silenced for this statement (None: a file-level finding)."""
        if statement is not None:
            stmt = self.per_statement.get(statement)
            if stmt is not None and code in stmt.ignore:
                self.used.add((statement, code))
                return True
        if code in self.file_codes:
            self.used.add((None, code))
            return True
        return False

    def unused(self, known: Collection[str]) -> list[Finding]:
        """One warning per ignore code that silenced nothing in this file."""
        out: list[Finding] = []
        for index, stmt in self.per_statement.items():
            for code in stmt.ignore:
                if (index, code) not in self.used:
                    out.append(
                        self._finding(code, known, max(stmt.line - 1, 1), "pgshift-ignore comment")
                    )
        line = self.header.line_of("lint-ignore")
        for code in self.file_codes:
            if (None, code) not in self.used:
                out.append(self._finding(code, known, line, "@lint-ignore"))
        return out

    def _finding(self, code: str, known: Collection[str], line: int, where: str) -> Finding:
        if code in known:
            message = f"{where} names {code}, but {code} found nothing to silence here"
        else:
            message = f"{where} names {code}, which is not a pgshift rule"
        return finding_for(UNUSED_IGNORE, self.file, line, 1, message)
