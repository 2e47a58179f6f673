"""A memo of parsed files (statements and header) keyed by each file's exact text.

Every command reads every migration file, and parsing is most of that cost (bench/RESULTS.md).
A file's statements are a pure function of its text and of the parser's version, so an entry
keyed by the SHA-256 of the text can never be stale; anything unreadable is simply ignored.
The caller decides where the bytes live; this module only reads and writes values.

The memo is loaded by every command, a no-op `up` included, so it is kept small: a statement
is stored as its span of the file's text (which the caller has anyway) rather than a copy of
its SQL, and a header keeps only its fields and the values that differ from the defaults.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pgshift.errors import Problem
from pgshift.model import Header, HeaderField, Statement

FORMAT = 3

_DEFAULT_HEADER = Header()
#: Header attributes stored by name when they differ from Header()'s; fields come first.
_HEADER_VALUES = (
    "migration",
    "description",
    "created",
    "version",
    "zero_downtime",
    "estimated_duration_ms",
    "risk_level",
    "dependencies",
    "transaction",
    "lock_timeout_ms",
    "statement_timeout_ms",
    "lint_ignore",
)


def text_key(text: str, checksum: str | None = None) -> str:
    """The SHA-256 of ``text``; ``checksum`` (of the LF-normalised text) is it when no CR.

    So the loader hashes each file once: the memo's key and the migration's checksum coincide
    for the usual file, and only a file with a CR pays a second hash of its exact text.
    """
    if checksum is not None and "\r" not in text:
        return checksum
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


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
        return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()

    def parse(
        self, text: str, file: str, *, rollback: bool, checksum: str | None = None
    ) -> tuple[Header, list[Problem], tuple[Statement, ...], list[Problem]]:
        """Header and statements of ``text``, from the memo when this exact text was read before.

        ``checksum`` is the text's `checksum_text`, when the caller has it (see text_key).
        Only clean results are kept: problems carry the file's name and are cheap to find
        again, and a file with problems is about to be edited anyway.
        """
        key = text_key(text, checksum) + (":r" if rollback else ":m")
        self._used.add(key)
        entry = self._entries.get(key)
        if entry is not None:
            try:
                header_row, rows = entry
                statements = tuple(_statement(text, i, row) for i, row in enumerate(rows))
                return _header(header_row), [], statements, []
            except (ValueError, TypeError, IndexError, KeyError, AttributeError):
                pass  # a damaged entry: parse again below
        from pgshift.source.header import parse_header
        from pgshift.source.sql import split_statements

        header, header_problems = parse_header(text, file, rollback=rollback)
        statements, sql_problems = split_statements(text, file)
        if not header_problems and not sql_problems:
            starts = _line_starts(text)
            self._entries[key] = [_header_row(header), [_row(text, starts, s) for s in statements]]
            self.changed = True
        return header, header_problems, statements, sql_problems


def _header_row(header: Header) -> list[Any]:
    """[fields, unknown, {attribute: value}] with only the attributes that are not defaults."""
    values = {}
    for name in _HEADER_VALUES:
        value = getattr(header, name)
        if value != getattr(_DEFAULT_HEADER, name):
            values[name] = list(value) if isinstance(value, tuple) else value
    return [_field_rows(header.fields), _field_rows(header.unknown), values]


def _field_rows(fields: tuple[HeaderField, ...]) -> list[list[Any]]:
    return [[f.key, f.value, f.line, f.is_annotation] for f in fields]


def _header(row: list[Any]) -> Header:
    fields, unknown, stored = row
    values = dict(stored)
    for name in ("dependencies", "lint_ignore"):
        if name in values:
            values[name] = tuple(values[name])
    return Header(
        fields=tuple(HeaderField(k, v, line, a) for k, v, line, a in fields),
        unknown=tuple(HeaderField(k, v, line, a) for k, v, line, a in unknown),
        **values,
    )


def _line_starts(text: str) -> list[int]:
    """Where each line starts; CRLF and a lone CR end a line, as in source/sql.py's LineIndex."""
    starts = [0]
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\r":
            if i + 1 < n and text[i + 1] == "\n":
                i += 1
            starts.append(i + 1)
        elif ch == "\n":
            starts.append(i + 1)
        i += 1
    return starts


def _row(text: str, starts: list[int], s: Statement) -> list[Any]:
    """The statement with its SQL as (offset, length) in ``text``, or the SQL itself.

    The offset comes from its line and column and is checked against the text, so an entry
    can only ever hold a span that reads back as exactly ``s.sql``.
    """
    at = starts[s.line - 1] + s.column - 1 if 0 < s.line <= len(starts) else -1
    where: list[Any] = [at, len(s.sql)] if at >= 0 and text.startswith(s.sql, at) else [s.sql, 0]
    index = list(s.concurrent_index) if s.concurrent_index else None
    return [
        *where,
        s.line,
        s.column,
        s.kind,
        s.transactional,
        s.transaction_control,
        index,
        list(s.ignore),
    ]


def _statement(text: str, index: int, row: list[Any]) -> Statement:
    where, length, line, column, kind, transactional, control, concurrent, ignore = row
    sql = where if isinstance(where, str) else text[where : where + length]
    if not isinstance(where, str) and len(sql) != length:
        raise ValueError("a span outside the text")  # a damaged entry: the caller re-parses
    return Statement(
        index,
        sql,
        line,
        column,
        kind,
        transactional,
        control,
        (concurrent[0], concurrent[1]) if concurrent else None,
        tuple(ignore),
    )
