"""golang-migrate's layout: `<n>_<name>.up.sql` / `<n>_<name>.down.sql`, and its
`schema_migrations (version bigint, dirty bool)` table: one row, the newest applied version.

golang-migrate hands each file to PostgreSQL as one query string, which the server runs as one
implicit transaction, so its files keep pgshift's default (one transaction; statements that
PostgreSQL refuses in one, such as CREATE INDEX CONCURRENTLY, run alone): it has no marker.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pgshift.source.importers import (
    Source,
    SourceMigration,
    Tool,
    ToolHistory,
    no_duplicates,
    read_text,
    require_folder,
)

TABLE = "schema_migrations"

# File names, not SQL: golang-migrate's own pattern.
_NAME_RE = re.compile(r"([0-9]+)_(.*)\.(up|down)\.sql")


def read(src: Path) -> Source:
    """Every `.up.sql` of ``src`` with its `.down.sql`, ordered by number like golang-migrate."""
    require_folder(src, "golang-migrate")
    ups: dict[tuple[str, str], Path] = {}
    downs: dict[tuple[str, str], Path] = {}
    skipped: list[str] = []
    for path in sorted(p for p in src.iterdir() if p.is_file()):
        match = _NAME_RE.fullmatch(path.name)
        if match is None:
            if path.suffix == ".sql":
                skipped.append(f"{path}: not <n>_<name>.up.sql or .down.sql")
            continue
        number, name, direction = match.groups()
        (ups if direction == "up" else downs)[(number, name)] = path
    found = [
        SourceMigration(
            id=number,
            name=name,
            up=read_text(path),
            down=read_text(downs[(number, name)]) if (number, name) in downs else None,
            path=path,
        )
        for (number, name), path in ups.items()
    ]
    skipped += [f"{p}: a down file without its up file" for k, p in downs.items() if k not in ups]
    found.sort(key=lambda m: int(m.id))
    no_duplicates("golang-migrate", found, int)
    return Source(tuple(found), tuple(skipped))


def interpret(
    rows: Sequence[tuple[Any, ...]], migrations: Sequence[SourceMigration]
) -> ToolHistory:
    """The row's version and every one before it are applied; a dirty row is refused."""
    refused: list[str] = []
    unknown: list[str] = []
    newest = -1
    for version, dirty in rows:
        if dirty:
            refused.append(
                f"version {version} is dirty: golang-migrate stopped in the middle of it, so"
                " nobody knows how much of it ran"
            )
        newest = max(newest, int(version))
    ids = {int(m.id): m.id for m in migrations}
    if newest >= 0 and newest not in ids:
        unknown.append(str(newest))
    applied = tuple(m.id for m in migrations if int(m.id) <= newest)
    return ToolHistory(TABLE, applied, tuple(refused), tuple(unknown))


TOOL = Tool("golang-migrate", TABLE, read, interpret)
