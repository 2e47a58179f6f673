"""Flyway's layout: `V<version>__<name>.sql` with `U<version>__<name>.sql` undo files and
`<file>.conf` script settings (`executeInTransaction=false`), searched in sub-folders too, and its
`flyway_schema_history` table: one row per attempt, with `success` and `type`.

Repeatable `R__` scripts have no version and no place in an ordered history: they are left out
and named in the import's notes.
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

TABLE = "flyway_schema_history"

# File names and `key=value` lines, not SQL.
_NAME_RE = re.compile(r"([VU])([0-9]+(?:[._][0-9]+)*)__(.*)\.sql")
_NO_TRANSACTION_RE = re.compile(r"^\s*executeInTransaction\s*=\s*false\s*$", re.MULTILINE)


def version_key(version: str) -> tuple[int, ...]:
    """Flyway's order and identity of a version: its numbers, trailing zeros dropped (1.0 = 1)."""
    parts = [int(p) for p in re.split(r"[._]", version) if p]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def _in_transaction(path: Path) -> bool:
    conf = path.with_name(path.name + ".conf")
    return not (conf.is_file() and _NO_TRANSACTION_RE.search(read_text(conf)))


def read(src: Path) -> Source:
    """Every versioned script under ``src`` with its undo script, in Flyway's version order."""
    require_folder(src, "flyway")
    forward: dict[tuple[int, ...], tuple[str, str, Path]] = {}
    undo: dict[tuple[int, ...], Path] = {}
    skipped: list[str] = []
    found: list[SourceMigration] = []
    for path in sorted(src.rglob("*.sql")):
        match = _NAME_RE.fullmatch(path.name)
        if match is None:
            why = "a repeatable script" if path.name.startswith("R__") else "not V<version>__<name>"
            skipped.append(f"{path}: {why}, not imported")
            continue
        prefix, version, name = match.groups()
        if prefix == "U":
            undo[version_key(version)] = path
            continue
        key = version_key(version)
        if key in forward:  # refused below, naming both files
            found.append(SourceMigration(version.replace("_", "."), name, "", None, path))
            continue
        forward[key] = (version.replace("_", "."), name, path)
    for key, (version, name, path) in forward.items():
        down = undo.get(key)
        found.append(
            SourceMigration(
                id=version,
                name=name,
                up=read_text(path),
                down=read_text(down) if down else None,
                path=path,
                transaction=_in_transaction(path),
                down_transaction=_in_transaction(down) if down else True,
            )
        )
    skipped += [
        f"{p}: an undo script without its V script" for k, p in undo.items() if k not in forward
    ]
    found.sort(key=lambda m: version_key(m.id))
    no_duplicates("flyway", found, version_key)
    return Source(tuple(found), tuple(skipped))


def interpret(
    rows: Sequence[tuple[Any, ...]], migrations: Sequence[SourceMigration]
) -> ToolHistory:
    """Replay the rows in `installed_rank` order: (installed_rank, version, type, success, script).

    A failed row is refused; an undo removes its version; a baseline row stands for every
    version up to it; rows without a version (repeatables, Flyway's schema creation) are
    nothing pgshift tracks.
    """
    by_key = {version_key(m.id): m.id for m in migrations}
    applied: set[tuple[int, ...]] = set()
    refused: list[str] = []
    baseline: tuple[int, ...] | None = None
    for _rank, version, kind, success, script in rows:
        if not success:
            refused.append(f"version {version} ({script}) failed: its success column is false")
            continue
        if version is None or kind == "SCHEMA":
            continue
        key = version_key(str(version))
        if kind == "BASELINE":
            baseline = key
        elif str(kind).startswith("UNDO") or kind == "DELETE":
            applied.discard(key)
        else:
            applied.add(key)
    if baseline is not None:
        applied |= {k for k in by_key if k <= baseline}
    unknown = [".".join(map(str, k)) for k in sorted(applied) if k not in by_key]
    ids = tuple(by_key[k] for k in sorted(applied) if k in by_key)
    return ToolHistory(TABLE, ids, tuple(refused), tuple(unknown))


TOOL = Tool("flyway", TABLE, read, interpret, "V<version>__<name>.sql files, in sub-folders too")
