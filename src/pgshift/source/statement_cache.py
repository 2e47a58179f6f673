"""A memo of parsed files (statements and header) keyed by each file's exact text.

Every command reads every migration file, and parsing is most of that cost (bench/RESULTS.md).
A file's statements are a pure function of its text and of the parser's version, so an entry
keyed by the SHA-256 of the text can never be stale; anything unreadable is simply ignored.
The caller decides where the bytes live; this module only reads and writes values.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from pgshift.errors import Problem
from pgshift.model import Header, HeaderField, Statement

FORMAT = 2


def _parser_version() -> str:
    """Which installed parser made the entries, without importing it (that costs 30 ms).

    The installed package's location, size and time change with every install, which is all
    an entry needs to know to be trusted.
    """
    import importlib.util
    import os

    spec = importlib.util.find_spec("pglast")
    if spec is None or spec.origin is None:
        return "none"
    info = os.stat(spec.origin)
    return f"{spec.origin}:{info.st_size}:{info.st_mtime_ns}"


class StatementCache:
    """Statements by text digest; remembers which entries this run used, so it never grows."""

    def __init__(self, entries: dict[str, Any] | None = None) -> None:
        self._entries = entries or {}
        self._used: set[str] = set()
        self.changed = False

    @classmethod
    def from_bytes(cls, data: bytes | None) -> StatementCache:
        if not data:
            return cls()
        try:
            document = json.loads(data)
            if document.get("format") != FORMAT or document.get("parser") != _parser_version():
                return cls()
            entries = document["entries"]
            if not isinstance(entries, dict):
                return cls()
            return cls(entries)
        except (ValueError, KeyError, TypeError, AttributeError):
            return cls()

    def to_bytes(self) -> bytes:
        kept = {key: self._entries[key] for key in sorted(self._used) if key in self._entries}
        document = {"format": FORMAT, "parser": _parser_version(), "entries": kept}
        return json.dumps(document, separators=(",", ":")).encode()

    def parse(
        self, text: str, file: str, *, rollback: bool
    ) -> tuple[Header, list[Problem], tuple[Statement, ...], list[Problem]]:
        """Header and statements of ``text``, from the memo when this exact text was read before.

        Only clean results are kept: problems carry the file's name and are cheap to find
        again, and a file with problems is about to be edited anyway.
        """
        key = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        key += ":r" if rollback else ":m"
        self._used.add(key)
        entry = self._entries.get(key)
        if entry is not None:
            try:
                header_row, rows = entry
                return _header(header_row), [], tuple(_statement(row) for row in rows), []
            except (ValueError, TypeError, IndexError, KeyError):
                pass  # a damaged entry: parse again below
        from pgshift.source.header import parse_header
        from pgshift.source.sql import split_statements

        header, header_problems = parse_header(text, file, rollback=rollback)
        statements, sql_problems = split_statements(text, file)
        if not header_problems and not sql_problems:
            self._entries[key] = [_header_row(header), [_row(s) for s in statements]]
            self.changed = True
        return header, header_problems, statements, sql_problems


def _header_row(header: Header) -> dict[str, Any]:
    """The header as JSON-ready values (dataclasses.asdict deep-copies: ten times slower)."""
    values = {f.name: getattr(header, f.name) for f in dataclasses.fields(header)}
    for name in ("fields", "unknown"):
        values[name] = [
            {"key": h.key, "value": h.value, "line": h.line, "is_annotation": h.is_annotation}
            for h in values[name]
        ]
    values["dependencies"] = list(values["dependencies"])
    values["lint_ignore"] = list(values["lint_ignore"])
    return values


def _header(row: dict[str, Any]) -> Header:
    def fields_of(items: list[dict[str, Any]]) -> tuple[HeaderField, ...]:
        return tuple(HeaderField(**item) for item in items)

    values = dict(row)
    values["fields"] = fields_of(values["fields"])
    values["unknown"] = fields_of(values["unknown"])
    values["dependencies"] = tuple(values["dependencies"])
    values["lint_ignore"] = tuple(values["lint_ignore"])
    return Header(**values)


def _row(s: Statement) -> list[Any]:
    index = list(s.concurrent_index) if s.concurrent_index else None
    return [
        s.index,
        s.sql,
        s.line,
        s.column,
        s.kind,
        s.transactional,
        s.transaction_control,
        index,
        list(s.ignore),
    ]


def _statement(row: list[Any]) -> Statement:
    index, sql, line, column, kind, transactional, control, concurrent, ignore = row
    return Statement(
        index=int(index),
        sql=str(sql),
        line=int(line),
        column=int(column),
        kind=str(kind),
        transactional=bool(transactional),
        transaction_control=bool(control),
        concurrent_index=(concurrent[0], str(concurrent[1])) if concurrent else None,
        ignore=tuple(str(code) for code in ignore),
    )
