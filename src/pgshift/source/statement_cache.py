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

import dataclasses
import hashlib
import json
import sys
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from pgshift.errors import Problem
from pgshift.model import Header, HeaderField, Statement

FORMAT = 9  # 9: a statement row ends with its table head (rewrite/preflight_head.py)

_T = TypeVar("_T")

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
    "kind",
    "batch_key",
    "batch_size",
    "batch_pause_ms",
    "expand_contract",
    "expand_down",
)


def _or_none(read: Callable[[], bytes | None]) -> bytes | None:
    try:
        return read()
    except OSError:
        return None


def _folder_document(data: bytes | None) -> dict[str, Any] | None:
    """A folder memo's document, or None when absent, foreign or damaged."""
    if not data:
        return None
    try:
        document = json.loads(data)
        if document.get("format") != FORMAT or not isinstance(document.get("key"), str):
            return None
        if not isinstance(document.get("result"), dict):
            return None
        return dict(document)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _folder_entries(document: dict[str, Any] | None) -> dict[str, Any]:
    """The per-file entries a folder memo holds (each script's rows under its entry key).

    A folder memo written by other code (another pgshift, another parser) gives none: its
    key would not match anyway, but its rows must not be taken for this code's either.
    """
    if document is None or document.get("parser") != code_version():
        return {}
    entries: dict[str, Any] = {}
    try:
        for *_, forward, rollback in document["result"]["migrations"]:
            for script in (forward, rollback):
                if script is not None:
                    _, header_row, rows, digest, key = script
                    entries[str(key)] = [header_row, rows, digest]
    except (ValueError, KeyError, TypeError, AttributeError):
        return {}
    return entries


def text_key(text: str, checksum: str | None = None) -> str:
    """The SHA-256 of ``text``; ``checksum`` (of the LF-normalised text) is it when no CR.

    So the loader hashes each file once: the memo's key and the migration's checksum coincide
    for the usual file, and only a file with a CR pays a second hash of its exact text.
    """
    if checksum is not None and "\r" not in text:
        return checksum
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def entry_key(text: str, *, rollback: bool, checksum: str | None = None) -> str:
    """Where a file's entry is kept: its text key, and whether it was read as a rollback."""
    return text_key(text, checksum) + (":r" if rollback else ":m")


def code_version() -> str:
    """The parser's identity and that of the pgshift modules whose output the memos hold.

    A new pgshift that splits, classifies or pairs differently must not trust entries the
    old one wrote; each file's size and time change with every install or edit.
    """
    import os

    source = os.path.dirname(os.path.abspath(__file__))
    package = os.path.dirname(source)
    from pgshift.source.stamps import parser_version

    parts = [parser_version()]
    for folder, names in (
        (source, ("header.py", "loader.py", "naming.py", "sql.py", "statement_cache.py")),
        (package, ("errors.py", "graph.py", "model.py")),
        (os.path.join(package, "rewrite"), ("backfill.py", "preflight_head.py")),
    ):
        for name in names:
            try:
                info = os.stat(os.path.join(folder, name))
            except OSError:
                continue
            parts.append(f"{name}:{info.st_size}:{info.st_mtime_ns}")
    return ";".join(parts)


def folder_key(directory: str, files: list[tuple[str, str]]) -> str:
    """The digest of everything a folder's LoadResult depends on: its path, every file's name
    and text key (text_key), the parser and pgshift's own code."""
    document = [FORMAT, code_version(), directory, files]
    return hashlib.sha256(json.dumps(document, ensure_ascii=False).encode()).hexdigest()


class StatementCache:
    """Statements by text digest; remembers which entries this run used, so it never grows.

    It also holds one *folder* memo: the whole LoadResult of the folder as last read, keyed by
    folder_key, with every file's entry inside it. A command over an unchanged folder (every
    no-op) reads only that. When a file changed, the per-file entries come from the folder
    memo and from the per-file document, which is written only for a folder the folder memo
    cannot stand for (one with problems): a clean folder's rows are written once, not twice.
    """

    def __init__(
        self,
        entries: dict[str, Any] | None = None,
        *,
        folder: dict[str, Any] | None = None,
        load_entries: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self._loaded = entries or {}
        self._load_entries = load_entries if entries is None else None
        self._used: set[str] = set()
        self.changed = False
        self._folder = folder
        self.folder_changed = False

    @property
    def _entries(self) -> dict[str, Any]:
        if self._load_entries is not None:
            self._loaded, self._load_entries = self._load_entries(), None
        return self._loaded

    @classmethod
    def deferred(
        cls, read_entries: Callable[[], bytes | None], folder: bytes | None
    ) -> StatementCache:
        """A memo whose per-file entries are read (``read_entries``, and the folder memo's
        own) only if a parse needs them."""
        document = _folder_document(folder)

        def load() -> dict[str, Any]:
            entries = _folder_entries(document)
            entries.update(cls.from_bytes(_or_none(read_entries))._loaded)
            return entries

        return cls(folder=document, load_entries=load)

    def folder_memo(self, key: str) -> Any | None:
        """What remember_folder stored under ``key``, if that is the folder memo held."""
        if self._folder is not None and self._folder.get("key") == key:
            return self._folder.get("result")
        return None

    def remember_folder(self, key: str, value: Any) -> None:
        if self.folder_memo(key) is None:
            self._folder = {"format": FORMAT, "parser": code_version(), "key": key, "result": value}
            self.folder_changed = True

    def folder_bytes(self) -> bytes:
        return "".join(self.folder_chunks()).encode("utf-8", "surrogatepass")

    def folder_chunks(self) -> Iterator[str]:
        """The folder memo as JSON text, a migration at a time.

        A large project's memo is tens of MiB of text; made in one piece, it would be the
        peak of the command's memory. Each piece is still made by json's C encoder.
        """
        document = self._folder or {"format": FORMAT, "key": "", "result": None}
        result = document.get("result")
        if not isinstance(result, dict) or set(result) != {"migrations", "warnings"}:
            yield json.dumps(document, separators=(",", ":"), ensure_ascii=False)
            return
        head = {key: value for key, value in document.items() if key != "result"}
        yield json.dumps(head, separators=(",", ":"), ensure_ascii=False)[:-1]
        yield ',"result":{"migrations":['
        for i, migration in enumerate(result["migrations"]):
            text = json.dumps(migration, separators=(",", ":"), ensure_ascii=False)
            yield f",{text}" if i else text
        warnings = json.dumps(result["warnings"], separators=(",", ":"), ensure_ascii=False)
        yield f'],"warnings":{warnings}}}}}'

    def row(self, text: str, *, rollback: bool, checksum: str | None = None) -> list[Any] | None:
        """The stored entry of ``text`` ([header row, statement rows, digest]), if any."""
        entry = self._entries.get(entry_key(text, rollback=rollback, checksum=checksum))
        return entry if isinstance(entry, list) else None

    @classmethod
    def from_bytes(cls, data: bytes | None) -> StatementCache:
        if not data:
            return cls()
        try:
            document = json.loads(data)
            if document.get("format") != FORMAT or document.get("parser") != code_version():
                return cls()
            entries = document["entries"]
            if not isinstance(entries, dict):
                return cls()
            return cls(entries)
        except (ValueError, KeyError, TypeError, AttributeError):
            return cls()

    def to_bytes(self) -> bytes:
        kept = {key: self._entries[key] for key in sorted(self._used) if key in self._entries}
        document = {"format": FORMAT, "parser": code_version(), "entries": kept}
        return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()

    def parse(self, text: str, file: str, *, rollback: bool, checksum: str | None = None) -> Parsed:
        """Header, statements and statement checksum of ``text`` (split_and_checksum), from the
        memo when this exact text was read before.

        ``checksum`` is the text's `checksum_text`, when the caller has it (see text_key).
        Only clean results are kept: problems carry the file's name and are cheap to find
        again, and a file with problems is about to be edited anyway.
        """
        known = self.lookup(text, rollback=rollback, checksum=checksum)
        if known is not None:
            return known
        from pgshift.source.header import parse_header
        from pgshift.source.sql import split_and_checksum

        header, header_problems = parse_header(text, file, rollback=rollback)
        statements, sql_problems, digest = split_and_checksum(text, file, trees=False)
        if not header_problems and not sql_problems and digest is not None:
            row = [encode_header(header), encode_statements(text, statements), digest]
            self.store(text, row, rollback=rollback, checksum=checksum)
        return header, header_problems, statements, sql_problems, digest

    def has(self, text: str, *, rollback: bool, checksum: str | None = None) -> bool:
        """Whether the memo holds ``text`` (without reading it, nor keeping it)."""
        return entry_key(text, rollback=rollback, checksum=checksum) in self._entries

    def lookup(self, text: str, *, rollback: bool, checksum: str | None = None) -> Parsed | None:
        """What `parse` would give from the memo alone, or None when the memo lacks ``text``."""
        key = entry_key(text, rollback=rollback, checksum=checksum)
        self._used.add(key)
        entry = self._entries.get(key)
        if entry is None:
            return None
        try:
            header_row, rows, digest = entry
            header = decode_header(header_row)
            return header, [], decode_statements(text, rows), [], str(digest)
        except (ValueError, TypeError, IndexError, KeyError, AttributeError):
            return None  # a damaged entry: the caller parses again

    def store(
        self, text: str, row: list[Any], *, rollback: bool, checksum: str | None = None
    ) -> None:
        """Keep a clean file's row ([header row, statement rows, digest]) under its text."""
        key = entry_key(text, rollback=rollback, checksum=checksum)
        self._used.add(key)
        self._entries[key] = row
        self.changed = True


#: (header, header problems, statements, SQL problems, statement checksum) of one file.
Parsed = tuple[Header, list[Problem], tuple[Statement, ...], list[Problem], str | None]
#: A file parsed elsewhere (to_rows): rows instead of objects, cheap to send between processes.
ParsedRows = tuple[list[Any], list[Problem], list[list[Any]], list[Problem], str | None]


def to_rows(text: str, parsed: Parsed) -> ParsedRows:
    """A parse as rows, cheap to send from a helper process (from_rows reverses it)."""
    header, header_problems, statements, sql_problems, digest = parsed
    return (
        encode_header(header),
        header_problems,
        encode_statements(text, statements),
        sql_problems,
        digest,
    )


def from_rows(text: str, parsed: ParsedRows) -> Parsed:
    """The objects of to_rows' rows, over the same text."""
    header_row, header_problems, rows, sql_problems, digest = parsed
    return (
        decode_header(header_row),
        header_problems,
        decode_statements(text, rows),
        sql_problems,
        digest,
    )


def encode_header(header: Header) -> list[Any]:
    """[fields, unknown, {attribute: value}] with only the attributes that are not defaults."""
    values = {}
    for name in _HEADER_VALUES:
        value = getattr(header, name)
        if value != getattr(_DEFAULT_HEADER, name):
            values[name] = list(value) if isinstance(value, tuple) else value
    return [_field_rows(header.fields), _field_rows(header.unknown), values]


def _field_rows(fields: tuple[HeaderField, ...]) -> list[Any]:
    """[key, value, line, is_annotation, key, ...]: one flat list per header, as a list per
    field costs a list object each (some 140,000 of them at 10,000 migrations)."""
    return [part for f in fields for part in (f.key, f.value, f.line, f.is_annotation)]


def plain_maker(cls: type[_T]) -> Callable[[dict[str, Any]], _T]:
    """A builder of ``cls`` from a dict of its fields, for decoding the memos.

    The model's classes have __slots__ (a memo of 10,000 migrations holds some 200,000 of
    their instances, and a slotted one is a third of the size of one with a __dict__), so the
    constructor builds them; a dict with missing or extra keys gets its error from it.
    """
    return lambda values: cls(**values)


_make_field = plain_maker(HeaderField)
_make_header = plain_maker(Header)
_make_statement = plain_maker(Statement)
_HEADER_DEFAULTS = {f.name: getattr(_DEFAULT_HEADER, f.name) for f in dataclasses.fields(Header)}


def _fields(flat: list[Any]) -> tuple[HeaderField, ...]:
    # The keys repeat in every file ("migration", "version", ...): one string each, not one
    # per file, which at 10,000 files is several MiB.
    if len(flat) % 4:
        raise ValueError("a damaged header row")  # the caller parses the file again
    make, intern = HeaderField, sys.intern
    f = flat
    return tuple([make(intern(f[i]), f[i + 1], f[i + 2], f[i + 3]) for i in range(0, len(f), 4)])


def decode_header(row: list[Any]) -> Header:
    """The Header of encode_header's row; a damaged row raises ValueError or worse."""
    fields, unknown, stored = row
    if not set(stored) <= set(_HEADER_VALUES):
        raise ValueError("an unknown header attribute")  # a damaged entry: the caller re-parses
    values = dict(_HEADER_DEFAULTS)
    values.update(stored)
    for name in ("dependencies", "lint_ignore", "batch_key"):
        if name in stored:
            values[name] = tuple(values[name])
    values["fields"] = _fields(fields)
    values["unknown"] = _fields(unknown) if unknown else ()
    return _make_header(values)


def encode_statements(text: str, statements: tuple[Statement, ...]) -> list[list[Any]]:
    """The memo's rows of ``statements``, spans of ``text`` (decode_statements reverses it)."""
    starts = _line_starts(text)
    return [_row(text, starts, s) for s in statements]


def decode_statements(text: str, rows: list[list[Any]]) -> tuple[Statement, ...]:
    """The statements of encode_statements' rows; a damaged row raises ValueError or worse."""
    return tuple([_statement(text, i, row) for i, row in enumerate(rows)])


def _line_starts(text: str) -> list[int]:
    """Where each line starts; CRLF and a lone CR end a line, as in source/sql.py's LineIndex."""
    starts = [0]
    if "\r" not in text:  # the common case, without a character loop in Python
        at = text.find("\n")
        while at != -1:
            starts.append(at + 1)
            at = text.find("\n", at + 1)
        return starts
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
        list(s.table_head) if s.table_head else None,
    ]


def _statement(text: str, index: int, row: list[Any]) -> Statement:
    where, length, line, column, kind, transactional, control, concurrent, ignore, head = row
    sql = where if isinstance(where, str) else text[where : where + length]
    if not isinstance(where, str) and len(sql) != length:
        raise ValueError("a span outside the text")  # a damaged entry: the caller re-parses
    return _make_statement(
        {
            "index": index,
            "sql": sql,
            "line": line,
            "column": column,
            "kind": kind,
            "transactional": transactional,
            "transaction_control": control,
            "concurrent_index": (concurrent[0], concurrent[1]) if concurrent else None,
            "ignore": tuple(ignore),
            "tree": None,
            "table_head": _head(head) if head else None,
        }
    )


def _head(row: list[Any]) -> tuple[str | None, str, bool, str, bool]:
    """A statement's table head (model.Statement.table_head) from its memo row."""
    schema, name, inh, persistence, flag = row
    if not (isinstance(name, str) and isinstance(persistence, str)):
        raise ValueError("a damaged table head")  # the caller parses the file again
    if schema is not None and not isinstance(schema, str):
        raise ValueError("a damaged table head")
    return (schema, name, bool(inh), persistence, bool(flag))
