"""Diesel's layout: `<version>_<name>/up.sql`, `down.sql` and `metadata.toml`, and its
`__diesel_schema_migrations (version, run_on)` table, which stores versions without dashes."""

from __future__ import annotations

import tomllib
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

TABLE = "__diesel_schema_migrations"


def _key(source_id: str) -> str:
    """Diesel's identity of a version: the digits, dashes dropped (as its table stores it)."""
    return source_id.replace("-", "")


def _in_transaction(folder: Path) -> bool:
    metadata = folder / "metadata.toml"
    if not metadata.is_file():
        return True
    try:
        values = tomllib.loads(read_text(metadata))
    except tomllib.TOMLDecodeError as exc:
        raise ImportRefused(f"{metadata}: not valid TOML: {exc}") from None
    return values.get("run_in_transaction", True) is not False


def read(src: Path) -> Source:
    """Every migration folder of ``src`` (one with an up.sql), ordered by version like Diesel."""
    require_folder(src, "diesel")
    found: list[SourceMigration] = []
    skipped: list[str] = []
    for folder in sorted(p for p in src.iterdir() if p.is_dir()):
        up = folder / "up.sql"
        if not up.is_file():
            skipped.append(f"{folder}: no up.sql, not a migration")
            continue
        version, _, name = folder.name.partition("_")
        down = folder / "down.sql"
        transaction = _in_transaction(folder)
        found.append(
            SourceMigration(
                id=version,
                name=name,
                up=read_text(up),
                down=read_text(down) if down.is_file() else None,
                path=up,
                transaction=transaction,
                down_transaction=transaction,
            )
        )
    found.sort(key=lambda m: _key(m.id))
    no_duplicates("diesel", found, _key)
    return Source(tuple(found), tuple(skipped))


def interpret(
    rows: Sequence[tuple[Any, ...]], migrations: Sequence[SourceMigration]
) -> ToolHistory:
    """Each row is one applied version (Diesel has no dirty or failed state)."""
    by_key = {_key(m.id): m.id for m in migrations}
    applied: list[str] = []
    unknown: list[str] = []
    for version, *_rest in rows:
        key = _key(str(version))
        if key in by_key:
            applied.append(by_key[key])
        else:
            unknown.append(str(version))
    return ToolHistory(TABLE, tuple(applied), (), tuple(unknown))


TOOL = Tool("diesel", TABLE, read, interpret, "folders <version>_<name>/ holding an up.sql")
