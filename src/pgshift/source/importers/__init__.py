"""Other tools' migrations as pgshift files: the pure half of `pgshift import`.

Each tool's module (diesel, golang_migrate, dbmate, flyway, popx) reads that tool's folder
layout into SourceMigrations, in the tool's own order, and interprets the rows of its history
table. This module maps the tools' ids to pgshift versions and renders the seed-format files
(SPEC 1 and 9). Nothing here writes a file or talks to a database: the caller writes what
`render` returns.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

from pgshift.errors import PgshiftError
from pgshift.source.naming import ROLLBACK_SUFFIX, check_version, slugify


class ImportRefused(PgshiftError):
    """The source cannot be carried over as it is (a dirty or failed entry, a bad layout).

    Exit 2, like every bad input: nothing was written, nothing recorded; fix it with the old
    tool (e.g. golang-migrate's `migrate force`), then import again.
    """

    exit_code = 2


@dataclass(frozen=True)
class SourceMigration:
    """One migration as the old tool knows it: its id, name, SQL and how it runs."""

    id: str  # as the tool writes it: "2017-03-18-181441", "3", "1.1"
    name: str  # the tool's name part, e.g. "create_users"
    up: str  # the forward SQL, exactly as in the source
    down: str | None  # the reverse SQL; None when the tool has no down for it
    path: Path  # the file the forward SQL came from
    transaction: bool = True  # False: the tool runs it outside a transaction
    down_transaction: bool = True


@dataclass(frozen=True)
class Source:
    """A tool's folder read: migrations in the tool's order, and what was left out, and why."""

    migrations: tuple[SourceMigration, ...]
    skipped: tuple[str, ...] = ()


@dataclass(frozen=True)
class ToolHistory:
    """What the old tool's history table says, read against the source's migrations.

    ``applied`` are ids of ``Source.migrations``; ``refused`` names dirty or failed entries;
    ``unknown`` are entries the source has no file for.
    """

    table: str
    applied: tuple[str, ...] = ()
    refused: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()


@dataclass(frozen=True)
class Tool:
    """One importable tool: its name, its history table and the two pure functions."""

    name: str
    table: str
    read: Callable[[Path], Source]
    # (the table's rows as db.legacy reads them, the source's migrations) -> ToolHistory
    interpret: Callable[[Sequence[tuple[Any, ...]], Sequence[SourceMigration]], ToolHistory]
    looks_for: str = "migrations"  # what `read` looks for, named when it finds none


@dataclass(frozen=True)
class ImportedFile:
    """The pgshift files of one source migration: names and full text, ready to write."""

    source: SourceMigration
    version: str
    description: str
    migration_name: str
    migration_text: str
    rollback_name: str | None  # None: the down was empty or absent (knowingly irreversible)
    rollback_text: str | None

    @property
    def irreversible(self) -> bool:
        return self.rollback_name is None


def tools() -> dict[str, Tool]:
    """The importable tools by their `--from` name."""
    from pgshift.source.importers import dbmate, diesel, flyway, golang_migrate, popx

    return {
        t.name: t for t in (diesel.TOOL, golang_migrate.TOOL, dbmate.TOOL, flyway.TOOL, popx.TOOL)
    }


def tool_named(name: str) -> Tool:
    from pgshift.errors import UsageError

    known = tools()
    if name not in known:
        raise UsageError(f"--from {name}: not a tool pgshift imports (say {', '.join(known)})")
    return known[name]


# -- versions --------------------------------------------------------------------------------------

#: The last second a 14-digit version can name (9999-12-31 23:59:59 UTC), as a Unix time.
_MAX_UNIX = 253_402_300_799
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ZERO = "0" * 14


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y%m%d%H%M%S")


def _timestamp_version(source_id: str) -> str | None:
    """A 14-digit date-time id (dashes and underscores aside) as itself; zeros as the epoch.

    Diesel's `00000000000000_diesel_initial_setup` is the one all-zero id seen in practice.
    """
    digits = source_id.replace("-", "").replace("_", "")
    if len(digits) != 14 or not digits.isdigit():
        return None
    if digits == _ZERO:
        return _stamp(_EPOCH)
    try:
        check_version(digits)
    except ValueError:
        return None
    return digits


def _unix_version(source_id: str) -> str | None:
    """An integer id (a sequence number or a Unix time) as that many seconds after 1970."""
    if not source_id.isdigit() or int(source_id) > _MAX_UNIX:
        return None
    return _stamp(_EPOCH + timedelta(seconds=int(source_id)))


SCHEMES: tuple[tuple[str, Callable[[str], str | None]], ...] = (
    ("timestamp", _timestamp_version),
    ("unix-seconds", _unix_version),
)


def map_versions(ids: Sequence[str]) -> tuple[str, tuple[str, ...]]:
    """(scheme, versions): a 14-digit pgshift version per source id, in the source's order.

    The first scheme that maps every id and keeps the source's order strictly increasing wins:
    ``timestamp`` (ids that already are YYYYMMDDHHMMSS, like Diesel's and dbmate's: kept as
    they are), ``unix-seconds`` (integers, like golang-migrate's 1, 2, 3 or its Unix times and
    Flyway's V1, V2: that many seconds after 1970-01-01 00:00:00, so 3 -> 19700101000003), else
    ``sequence`` (Flyway's dotted 1.1, or a mix: the n-th migration is n seconds after 1970).
    Each is a function of the ids alone, so importing the same folder again gives the same
    versions, and each leaves `pgshift create`'s versions of today after all of them.
    """
    for scheme, convert in SCHEMES:
        mapped = [convert(i) for i in ids]
        versions = [v for v in mapped if v is not None]
        if len(versions) == len(ids) and all(a < b for a, b in pairwise(versions)):
            return scheme, tuple(versions)
    return "sequence", tuple(_stamp(_EPOCH + timedelta(seconds=n + 1)) for n in range(len(ids)))


# -- rendering -------------------------------------------------------------------------------------


def _description(source: SourceMigration, tool: str) -> str:
    try:
        slug = slugify(source.name)
    except ValueError:
        slug = f"imported_from_{slugify(tool)}"
    if slug.endswith(ROLLBACK_SUFFIX):  # that suffix marks rollback files
        slug += "_migration"
    return slug


def is_empty_sql(text: str | None) -> bool:
    """No SQL at all: only blank lines, `--` comments and semicolons (an empty down)."""
    if text is None:
        return True
    for line in text.splitlines():
        stripped = line.strip().strip(";").strip()
        if stripped and not stripped.startswith("--"):
            return False
    return True


#: The header line that tells a file `import` wrote from one edited since: the SHA-256 of the
#: file's whole text without this line. A comment, not SQL: a regex reads it.
CHECKSUM_KEY = "import-checksum"
_CHECKSUM_RE = re.compile(r"-- @import-checksum: sha256:([0-9a-f]{64})(\r?\n|$)")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _stamped(lines: list[str], body: str) -> str:
    """The header ``lines``, then the checksum line over the rest, then ``body``."""
    unstamped = "\n".join(lines) + "\n\n" + body
    stamp = f"-- @{CHECKSUM_KEY}: sha256:{_digest(unstamped)}"
    return "\n".join([*lines, stamp]) + "\n\n" + body


def unstamped(text: str) -> tuple[str, str | None]:
    """(the text without its checksum line, the checksum it states, or None without one).

    Only a line of the header counts: the lines before the first blank line.
    """
    header_end = text.find("\n\n")
    end = header_end + 1 if header_end >= 0 else len(text)  # the header's last newline too
    for match in _CHECKSUM_RE.finditer(text, 0, end):
        if match.start() == 0 or text[match.start() - 1] == "\n":
            return text[: match.start()] + text[match.end() :], match.group(1)
    return text, None


def unedited(text: str, rendered: str) -> bool:
    """Whether ``text`` (a file on disk) is exactly what an import wrote, unedited since.

    A file with a checksum line is unedited when the rest hashes to it; an older import's file,
    written before pgshift stamped its files, when it equals ``rendered`` without its stamp.
    """
    rest, stated = unstamped(text)
    if stated is not None:
        return _digest(rest) == stated
    return rest == unstamped(rendered)[0]


def render(tool: str, source: SourceMigration, version: str) -> ImportedFile:
    """The migration (and rollback) file of ``source``: header, then its SQL byte for byte.

    Each file's header ends with its `@import-checksum`, so that importing again can tell a
    file it wrote (and may update) from one edited since (which it leaves alone).
    """
    description = _description(source, tool)
    name = f"{version}_{description}.sql"
    words = description.replace("_", " ")
    irreversible = is_empty_sql(source.down)
    header = [
        f"-- Migration: {name}",
        f"-- Description: {words[:1].upper()}{words[1:]}",
        f"-- Created: {version[0:4]}-{version[4:6]}-{version[6:8]}",
        f"-- Version: {version}",
        f"-- @imported-from: {tool} {source.id}",
    ]
    if not source.transaction:
        header.append("-- @transaction: false")
    if irreversible:
        header.append("-- @lint-ignore: missing-rollback")
    text = _stamped(header, source.up)
    rollback_name = rollback_text = None
    if not irreversible and source.down is not None:
        rollback_name = f"{version}_{description}{ROLLBACK_SUFFIX}.sql"
        lines = [f"-- Rollback: {rollback_name}"]
        if not source.down_transaction:
            lines.append("-- @transaction: false")
        rollback_text = _stamped(lines, source.down)
    return ImportedFile(source, version, description, name, text, rollback_name, rollback_text)


def convert(tool: Tool, source: Source) -> tuple[str, tuple[ImportedFile, ...]]:
    """(version scheme, files) of every migration of ``source``, in its order."""
    scheme, versions = map_versions([m.id for m in source.migrations])
    files = tuple(render(tool.name, m, v) for m, v in zip(source.migrations, versions, strict=True))
    return scheme, files


def read_text(path: Path) -> str:
    """A source file's text, exactly (no newline translation); ImportRefused if unreadable."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImportRefused(f"{path}: cannot read it: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ImportRefused(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def require_folder(path: Path, tool: str) -> None:
    if not path.is_dir():
        what = "is not a folder" if path.exists() else "does not exist"
        raise ImportRefused(f"{path} {what}: give the folder of the {tool} migrations")


def no_duplicates(
    tool: str, migrations: Sequence[SourceMigration], key: Callable[[str], Any]
) -> None:
    """Refuse two source migrations the tool itself would take for one."""
    seen: dict[Any, SourceMigration] = {}
    for m in migrations:
        k = key(m.id)
        if k in seen:
            raise ImportRefused(
                f"{tool}: {seen[k].path} and {m.path} have the same version {m.id}",
                hint="give one of them another version in the source, then import again",
            )
        seen[k] = m
