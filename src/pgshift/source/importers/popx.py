"""ory/popx's layout: `<version>_<name>[.<dialect>][.autocommit].up.sql` / `.down.sql`, and its
`schema_migration (version, version_self)` table: one row per applied version.

popx (ory/kratos, hydra, keto) keeps the migrations of every database it supports in one folder.
For PostgreSQL it takes, per version, the `.postgres` file (`.postgresql` and `.pg` are the same
dialect to pop) and otherwise the generic one without a dialect; files of other dialects
(`.mysql`, `.sqlite3`, `.cockroach`, ...) are not PostgreSQL's migrations and are left out, and so
is a version that has only such files. An empty `.postgres` file is popx's way to say "nothing
to do on PostgreSQL" and is imported as an empty migration, never replaced by the generic one.
`.autocommit` runs the file outside a transaction. Versions are ordered as strings, as popx
orders them. popx's older table (14-digit versions) still counts: a row of the first 14 digits
of a longer version marks that version applied, as popx itself reads it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pgshift.source.importers import (
    ImportRefused,
    Source,
    SourceMigration,
    Tool,
    ToolHistory,
    read_text,
    require_folder,
)

TABLE = "schema_migration"

# File names, not SQL: popx's own pattern (its MigrationFileRegexp), `.fizz` included so that a
# fizz file is named as left out rather than silently ignored.
_NAME_RE = re.compile(r"([0-9]+)_([^.]+)(\.[a-z0-9]+)?(\.autocommit)?\.(up|down)\.(sql|fizz)")
_LEGACY_DIGITS = 14

#: pop's canonical dialect of each name it accepts; "all" is the generic file.
_DIALECTS = {
    "postgres": "postgres",
    "postgresql": "postgres",
    "pg": "postgres",
    "cockroach": "cockroach",
    "cockroachdb": "cockroach",
    "crdb": "cockroach",
    "mysql": "mysql",
    "sqlite3": "sqlite3",
    "sqlite": "sqlite3",
}

LOOKS_FOR = "<version>_<name>[.postgres][.autocommit].up.sql files (and their .down.sql)"


@dataclass(frozen=True)
class _File:
    version: str
    name: str
    dialect: str  # "postgres" or "all"
    autocommit: bool
    direction: str
    path: Path


def _parse(path: Path) -> tuple[_File | None, str | None]:
    """The file as popx reads its name, or (None, why it is left out)."""
    match = _NAME_RE.fullmatch(path.name)
    if match is None:
        return None, None if path.suffix != ".sql" else "not <version>_<name>.up.sql or .down.sql"
    version, name, dialect_part, autocommit_part, direction, kind = match.groups()
    autocommit = autocommit_part is not None
    if dialect_part == ".autocommit":  # popx: the flag took the dialect's place
        dialect, autocommit = "all", True
    elif dialect_part is None:
        dialect = "all"
    else:
        dialect = _DIALECTS.get(dialect_part[1:], "")
        if not dialect:
            return None, f"dialect {dialect_part[1:]!r} is not one pop supports"
    if kind == "fizz":
        return None, "a fizz file: pgshift imports SQL only (render it to SQL with pop first)"
    if dialect not in ("postgres", "all"):
        return None, f"dialect:{dialect}"
    return _File(version, name, dialect, autocommit, direction, path), None


def _pick(files: list[_File], direction: str) -> _File | None:
    """The file PostgreSQL runs for one version and direction: `.postgres`, else the generic."""
    chosen = [f for f in files if f.direction == direction]
    for dialect in ("postgres", "all"):
        of = [f for f in chosen if f.dialect == dialect]
        if len(of) > 1:
            raise ImportRefused(
                f"popx: {of[0].path} and {of[1].path} are both the {dialect} {direction} file of"
                f" version {of[0].version}",
                hint="keep one of them, then import again",
            )
        if of:
            return of[0]
    return None


def read(src: Path) -> Source:
    """Every version with a PostgreSQL or generic up file under ``src``, in popx's order."""
    require_folder(src, "popx")
    by_version: dict[str, list[_File]] = {}
    skipped: list[str] = []
    other: Counter[str] = Counter()
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        parsed, why = _parse(path)
        if parsed is not None:
            by_version.setdefault(parsed.version, []).append(parsed)
        elif why is not None and why.startswith("dialect:"):
            other[why.removeprefix("dialect:")] += 1
        elif why is not None:
            skipped.append(f"{path}: {why}")
    found: list[SourceMigration] = []
    for version in sorted(by_version):
        files = by_version[version]
        up, down = _pick(files, "up"), _pick(files, "down")
        if up is None:
            skipped += [f"{f.path}: a down file without its up file" for f in files]
            continue
        found.append(
            SourceMigration(
                id=version,
                name=up.name,
                up=read_text(up.path),
                down=read_text(down.path) if down is not None else None,
                path=up.path,
                transaction=not up.autocommit,
                down_transaction=down is None or not down.autocommit,
            )
        )
    if other:
        counts = ", ".join(f"{n} {d}" for d, n in sorted(other.items()))
        skipped.append(
            f"{sum(other.values())} file(s) of other databases ({counts}): not PostgreSQL's"
        )
    return Source(tuple(found), tuple(skipped))


def interpret(
    rows: Sequence[tuple[Any, ...]], migrations: Sequence[SourceMigration]
) -> ToolHistory:
    """Each row is one applied version; a 14-digit row of popx's older table stands for every
    longer version that starts with it (popx has no dirty or failed state)."""
    ids = [m.id for m in migrations]
    applied: set[str] = set()
    unknown: list[str] = []
    for version, *_rest in rows:
        row = str(version).strip()
        hits = [i for i in ids if i == row]
        if not hits and len(row) == _LEGACY_DIGITS:
            hits = [i for i in ids if len(i) > _LEGACY_DIGITS and i[:_LEGACY_DIGITS] == row]
        if hits:
            applied.update(hits)
        else:
            unknown.append(row)
    return ToolHistory(TABLE, tuple(i for i in ids if i in applied), (), tuple(unknown))


TOOL = Tool("popx", TABLE, read, interpret, LOOKS_FOR)
