"""The metadata block at the top of a migration file: ``-- Key: value`` and ``-- @key: value``."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pgshift.durations import parse_duration_ms
from pgshift.errors import Problem
from pgshift.model import RISK_LEVELS, Header, HeaderField

# Comment text, not SQL: a regex is the right tool for a "@key: value" line.
_ANNOTATION_RE = re.compile(r"@([A-Za-z0-9_-]+)\s*(.*)")
_PLAIN_RE = re.compile(r"([A-Za-z]+)\s*:\s*(.*)")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_VERSION_RE = re.compile(r"[0-9]{14}")
# A batch key column as a bare SQL identifier: the name the catalog holds, lower-case unless
# quoted; a name needing quotes is written with them ("Order Id").
_COLUMN_RE = re.compile(r'[a-z_][a-z0-9_$]*|"(?:[^"]|"")+"')
_DEPENDENCY_RE = re.compile(r"[0-9]{14}(?:_[a-z0-9]+(?:_[a-z0-9]+)*)?(?:\.sql)?")

_TRUE = ("true", "yes")
_FALSE = ("false", "no")

PLAIN_KEYS = ("migration", "rollback", "description", "created", "version")
ANNOTATION_KEYS = (
    "zero-downtime",
    "estimated-duration",
    "risk-level",
    "dependencies",
    "transaction",
    "lock-timeout",
    "statement-timeout",
    "lint-ignore",
    "kind",
    "batch-key",
    "batch-size",
    "batch-pause",
    "expand-contract",
    "expand-down",
)
#: The annotations that only a `@kind: backfill` file may carry (and an `@expand-contract`
#: one: they pace its backfill).
BACKFILL_KEYS = ("batch-key", "batch-size", "batch-pause")
#: What `@kind` accepts: the one kind of migration that runs differently from plain SQL.
KINDS = ("backfill",)
#: Annotations pgshift writes itself and only records (in the history's metadata), never acts on:
#: `pgshift import`'s "@imported-from: <tool> <id>" and "@import-checksum: sha256:<hex>" (what it
#: wrote, so that importing again tells its own files from files edited since).
RECORDED_KEYS = ("imported-from", "import-checksum")


class _BadValue(ValueError):
    """A header value that cannot be used; the message says what is allowed."""


def _boolean(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise _BadValue("expected true, false, yes or no")


def _duration(value: str) -> int:
    try:
        return parse_duration_ms(value)
    except ValueError as exc:
        raise _BadValue(str(exc)) from None


def _risk(value: str) -> str:
    lowered = value.strip().lower()
    if lowered not in RISK_LEVELS:
        raise _BadValue("expected one of " + ", ".join(RISK_LEVELS))
    return lowered


def _created(value: str) -> str:
    if _DATE_RE.fullmatch(value):
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            pass
    raise _BadValue("expected a date YYYY-MM-DD")


def _version(value: str) -> str:
    if not _VERSION_RE.fullmatch(value):
        raise _BadValue("expected the 14-digit version YYYYMMDDHHMMSS")
    return value


def _non_empty(value: str) -> str:
    if not value:
        raise _BadValue("expected a value")
    return value


def _list(value: str, *, pattern: re.Pattern[str] | None, what: str) -> tuple[str, ...]:
    if not value.strip():
        return ()
    items = tuple(item.strip() for item in value.split(","))
    if any(not item for item in items):
        raise _BadValue(f"empty entry in the comma-separated list; expected {what}")
    if pattern is not None:
        for item in items:
            if not pattern.fullmatch(item):
                raise _BadValue(f"entry {item!r} is not {what}")
    return items


def _dependencies(value: str) -> tuple[str, ...]:
    return _list(
        value,
        pattern=_DEPENDENCY_RE,
        what="a version (YYYYMMDDHHMMSS) or a migration name (YYYYMMDDHHMMSS_description)",
    )


def _codes(value: str) -> tuple[str, ...]:
    return _list(value, pattern=None, what="rule codes such as require-concurrent-index")


def _kind(value: str) -> str:
    lowered = value.strip().lower()
    if lowered not in KINDS:
        raise _BadValue("expected one of " + ", ".join(KINDS))
    return lowered


def _columns(value: str) -> tuple[str, ...]:
    """Column names as the catalog spells them: bare names are folded to lower case as SQL
    folds them, quoted names keep their case."""
    items = _list(value, pattern=None, what="column names")
    if not items:
        raise _BadValue("expected a column name, or several separated by commas")
    names = []
    for item in items:
        name = item if _COLUMN_RE.fullmatch(item) else item.lower()
        if _COLUMN_RE.fullmatch(name) is None or (name != item and name.startswith('"')):
            raise _BadValue(f'{item!r} is not a column name (quote it: "Name")')
        names.append(name[1:-1].replace('""', '"') if name.startswith('"') else name)
    if len(set(names)) != len(names):
        raise _BadValue("a column is named twice")
    return tuple(names)


def _positive(value: str) -> int:
    text = value.strip().replace("_", "").replace(",", "")
    if not text.isdigit() or int(text) < 1:
        raise _BadValue("expected a whole number of rows, at least 1")
    return int(text)


# key -> (Header attribute, converter)
_CONVERTERS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "migration": ("migration", _non_empty),
    "rollback": ("migration", _non_empty),
    "description": ("description", _non_empty),
    "created": ("created", _created),
    "version": ("version", _version),
    "zero-downtime": ("zero_downtime", _boolean),
    "estimated-duration": ("estimated_duration_ms", _duration),
    "risk-level": ("risk_level", _risk),
    "dependencies": ("dependencies", _dependencies),
    "transaction": ("transaction", _boolean),
    "lock-timeout": ("lock_timeout_ms", _duration),
    "statement-timeout": ("statement_timeout_ms", _duration),
    "lint-ignore": ("lint_ignore", _codes),
    "kind": ("kind", _kind),
    "batch-key": ("batch_key", _columns),
    "batch-size": ("batch_size", _positive),
    "batch-pause": ("batch_pause_ms", _duration),
    "expand-contract": ("expand_contract", _boolean),
    "expand-down": ("expand_down", _non_empty),
}


@dataclass
class _Builder:
    file: str
    rollback: bool
    fields: list[HeaderField] = field(default_factory=list)
    unknown: list[HeaderField] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    seen: dict[tuple[str, bool], int] = field(default_factory=dict)

    def add(self, item: HeaderField) -> None:
        self.fields.append(item)
        shown = _shown(item)
        identity = (item.key, item.is_annotation)
        if identity in self.seen:
            self.problems.append(
                Problem(
                    self.file,
                    item.line,
                    f"duplicate header field {shown} (first given on line {self.seen[identity]})",
                )
            )
            return
        self.seen[identity] = item.line
        known = ANNOTATION_KEYS + RECORDED_KEYS if item.is_annotation else PLAIN_KEYS
        if item.key not in known:
            self.unknown.append(item)
            return
        wrong_kind = "migration" if self.rollback else "rollback"
        if item.key == wrong_kind:
            right = "'-- Rollback:'" if self.rollback else "'-- Migration:'"
            kind = "a rollback" if self.rollback else "a forward migration"
            self.problems.append(
                Problem(
                    self.file,
                    item.line,
                    f"'-- {shown}:' does not belong in {kind} file; it names itself with {right}",
                )
            )
            return
        if item.key in RECORDED_KEYS:
            return
        attribute, convert = _CONVERTERS[item.key]
        try:
            self.values[attribute] = convert(item.value)
        except _BadValue as exc:
            self.problems.append(
                Problem(self.file, item.line, f"bad value {item.value!r} for {shown}: {exc}")
            )


def _shown(item: HeaderField) -> str:
    if item.is_annotation:
        return f"@{item.key}"
    return item.key.capitalize()


def _parse_line(content: str, line: int) -> HeaderField | str | None:
    """Read one comment's text (after ``--``) as a header field.

    Returns None for a plain comment, or a message when a known annotation lacks its colon
    (``-- @risk-level high`` would otherwise be silently ignored).
    """
    if content.startswith("@"):
        match = _ANNOTATION_RE.fullmatch(content)
        if match is None:
            return None
        key, rest = match.group(1).lower(), match.group(2)
        if rest.startswith(":"):
            return HeaderField(key, rest[1:].strip(), line, True)
        if not rest:
            return HeaderField(key, "", line, True)
        if key in ANNOTATION_KEYS:
            return f"missing ':' after @{key}; write it as '-- @{key}: {rest.strip()}'"
        return None
    match = _PLAIN_RE.fullmatch(content)
    if match is None or match.group(1).lower() not in PLAIN_KEYS:
        return None
    return HeaderField(match.group(1).lower(), match.group(2).strip(), line, False)


def header_lines(text: str) -> list[tuple[int, str]]:
    """The (line number, comment text) pairs of the leading comment block.

    The block ends at the first line that is neither blank nor a ``--`` comment, so a comment
    further down (inside or between statements) is never read as metadata. Lines are found
    one at a time, so the rest of a long file is never split.
    """
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.removeprefix("\ufeff")
    result: list[tuple[int, str]] = []
    start, number, size = 0, 0, len(text)
    while True:
        end = text.find("\n", start)
        if end == -1:
            end = size
        number += 1
        stripped = text[start:end].strip()
        if stripped:
            if not stripped.startswith("--"):
                break
            result.append((number, stripped[2:].strip()))
        if end == size:
            break
        start = end + 1
    return result


def parse_header(text: str, file: str, *, rollback: bool = False) -> tuple[Header, list[Problem]]:
    """Parse the header of ``text``; every bad value becomes a Problem instead of an exception.

    Fields with a bad value are kept in ``Header.fields`` (so their line can be shown) but
    leave the typed attribute at its default.
    """
    builder = _Builder(file=file, rollback=rollback)
    for number, content in header_lines(text):
        item = _parse_line(content, number)
        if isinstance(item, str):
            builder.problems.append(Problem(file, number, item))
        elif item is not None:
            builder.add(item)
    header = Header(fields=tuple(builder.fields), unknown=tuple(builder.unknown), **builder.values)
    kind_given = any(f.is_annotation and f.key == "kind" for f in builder.fields)
    if header.kind != "backfill" and not kind_given and not header.expand_contract:
        for item in builder.fields:
            if item.is_annotation and item.key in BACKFILL_KEYS:
                builder.problems.append(
                    Problem(
                        file,
                        item.line,
                        f"@{item.key} applies only to a backfill; add '-- @kind: backfill'"
                        " (or '-- @expand-contract: true', whose copy of the rows is one)",
                    )
                )
    return header, builder.problems
