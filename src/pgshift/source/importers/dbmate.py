"""dbmate's layout: `<version>_<name>.sql` with `-- migrate:up` and `-- migrate:down` sections
(`transaction:false` after either marker runs it outside a transaction), and its
`schema_migrations (version varchar)` table: one row per applied version."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pgshift.source.importers import (
    ImportRefused,
    Source,
    SourceMigration,
    Tool,
    ToolHistory,
    no_duplicates,
    read_text,
    require_folder,
)

TABLE = "schema_migrations"

# Comment markers and file names, not SQL: dbmate's own patterns.
_NAME_RE = re.compile(r"([0-9]+)_?(.*)\.sql")
_MARKER_RE = re.compile(r"^--\s*migrate:(up|down)([^\n]*)$", re.MULTILINE)
_NO_TRANSACTION_RE = re.compile(r"\btransaction:false\b")


def _sections(path: Path, text: str) -> tuple[str, bool, str | None, bool]:
    """(up, up in a transaction, down or None, down in a transaction), sliced from ``text``."""
    markers = list(_MARKER_RE.finditer(text))
    kinds = [m.group(1) for m in markers]
    if kinds.count("up") != 1 or kinds.count("down") > 1:
        raise ImportRefused(
            f"{path}: expected one `-- migrate:up` line (and at most one `-- migrate:down`)"
        )
    up_at = kinds.index("up")
    if "down" in kinds and kinds.index("down") < up_at:
        raise ImportRefused(f"{path}: `-- migrate:down` comes before `-- migrate:up`")
    up_marker = markers[up_at]
    body_start = up_marker.end() + 1 if text[up_marker.end() : up_marker.end() + 1] else len(text)
    down_marker = markers[up_at + 1] if len(markers) > up_at + 1 else None
    up = text[body_start : down_marker.start() if down_marker else len(text)]
    up_tx = _NO_TRANSACTION_RE.search(up_marker.group(2)) is None
    if down_marker is None:
        return up, up_tx, None, True
    down = text[down_marker.end() + 1 :]
    return up, up_tx, down, _NO_TRANSACTION_RE.search(down_marker.group(2)) is None


def read(src: Path) -> Source:
    """Every `<version>_<name>.sql` of ``src``, ordered by version like dbmate."""
    require_folder(src, "dbmate")
    found: list[SourceMigration] = []
    skipped: list[str] = []
    for path in sorted(p for p in src.iterdir() if p.is_file() and p.suffix == ".sql"):
        match = _NAME_RE.fullmatch(path.name)
        if match is None:
            skipped.append(f"{path}: not <version>_<name>.sql")
            continue
        up, up_tx, down, down_tx = _sections(path, read_text(path))
        found.append(
            SourceMigration(match.group(1), match.group(2), up, down, path, up_tx, down_tx)
        )
    found.sort(key=lambda m: m.id)
    no_duplicates("dbmate", found, str)
    return Source(tuple(found), tuple(skipped))


def interpret(
    rows: Sequence[tuple[Any, ...]], migrations: Sequence[SourceMigration]
) -> ToolHistory:
    """Each row is one applied version (dbmate has no dirty or failed state)."""
    ids = {m.id for m in migrations}
    versions = [str(r[0]) for r in rows]
    return ToolHistory(
        TABLE,
        tuple(m.id for m in migrations if m.id in versions),
        (),
        tuple(v for v in versions if v not in ids),
    )


TOOL = Tool(
    "dbmate", TABLE, read, interpret, "<version>_<name>.sql files with a `-- migrate:up` line"
)
