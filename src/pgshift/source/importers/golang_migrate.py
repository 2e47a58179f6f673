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

# File names, not SQL: golang-migrate's own pattern.
_NAME_RE = re.compile(r"([0-9]+)_(.*)\.(up|down)\.sql")


# popx's dialect suffixes: golang-migrate would take `x.postgres` and `x.mysql` for names.
_POPX_SUFFIX_RE = re.compile(r".*\.(postgres|postgresql|pg|mysql|sqlite3?|cockroach(db)?|crdb)")


def _not_popx(ups: list[tuple[str, str, Path]]) -> None:
    """Refuse ory/popx's layout, which golang-migrate's pattern half matches, naming popx."""
    for _number, name, path in ups:
        if _POPX_SUFFIX_RE.fullmatch(name):
            raise ImportRefused(
                f"golang-migrate: {path} names a database in its name: that is ory/popx's layout",
                hint="import it with --from popx",
            )


def read(src: Path) -> Source:
    """Every `.up.sql` of ``src`` with its `.down.sql`, ordered by number like golang-migrate.

    golang-migrate pairs an up file and a down file by their version alone (the number, read
    as an integer): `30_add_x.up.sql` and `30_drop_x.down.sql` are one migration to it, so
    they are one here; two files of one version and direction are refused, as it refuses them.
    """
    require_folder(src, "golang-migrate")
    ups: list[tuple[str, str, Path]] = []
    downs: dict[int, Path] = {}
    skipped: list[str] = []
    for path in sorted(p for p in src.iterdir() if p.is_file()):
        match = _NAME_RE.fullmatch(path.name)
        if match is None:
            if path.suffix == ".sql":
                skipped.append(f"{path}: not <n>_<name>.up.sql or .down.sql")
            continue
        number, name, direction = match.groups()
        if direction == "up":
            ups.append((number, name, path))
        elif int(number) in downs:
            raise ImportRefused(
                f"golang-migrate: {downs[int(number)]} and {path} are both the down file of"
                f" version {int(number)}",
                hint="keep one of them, then import again",
            )
        else:
            downs[int(number)] = path
    found = [
        SourceMigration(
            id=number,
            name=name,
            up=read_text(path),
            down=read_text(downs[int(number)]) if int(number) in downs else None,
            path=path,
        )
        for number, name, path in ups
    ]
    _not_popx(ups)
    versions = {int(number) for number, _, _ in ups}
    skipped += [
        f"{p}: a down file without its up file" for v, p in downs.items() if v not in versions
    ]
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


TOOL = Tool(
    "golang-migrate", TABLE, read, interpret, "<n>_<name>.up.sql files (and their .down.sql)"
)
