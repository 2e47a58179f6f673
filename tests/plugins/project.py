"""Pytest plugin that writes throw-away pgshift projects, and helpers that write migration files.

`migration_text` and `rollback_text` produce headers exactly as SPEC section 1 describes,
so that a test only spells out what it is about (the SQL, a dependency, a bad header line).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import pytest

__all__ = [
    "ProjectMaker",
    "make_project",
    "migration_name",
    "migration_pair",
    "migration_text",
    "rollback_name",
    "rollback_text",
    "slug",
]


def slug(description: str) -> str:
    """The file-name form of a description: lower-case words joined by `_`."""
    return "_".join(re.findall(r"[a-z0-9]+", description.lower()))


def migration_name(version: str, description: str) -> str:
    """`<version>_<slug>.sql`."""
    return f"{version}_{slug(description)}.sql"


def rollback_name(version: str, description: str) -> str:
    """`<version>_<slug>_rollback.sql`."""
    return f"{version}_{slug(description)}_rollback.sql"


def _created(version: str) -> str:
    # The date of the version itself, so the text is deterministic and consistent.
    return datetime.strptime(version, "%Y%m%d%H%M%S").strftime("%Y-%m-%d")


def _body(sql: str) -> str:
    return sql.strip("\n") + "\n"


def migration_text(
    version: str,
    description: str,
    sql: str,
    *,
    deps: Iterable[str] = (),
    zero_downtime: bool | None = None,
    extra_header: Iterable[str] = (),
) -> str:
    """A migration file: a complete, valid header followed by `sql`.

    `description` may be words ("Add users table") or a slug ("add_users_table"); the file
    name uses the slug, the Description line the words.  `extra_header` lines are added
    after the standard ones; a line not starting with `--` gets a `-- ` prefix, so
    `"@risk-level: low"` works.
    """
    words = slug(description).replace("_", " ")
    lines = [
        f"-- Migration: {migration_name(version, description)}",
        f"-- Description: {words[:1].upper()}{words[1:]}",
        f"-- Created: {_created(version)}",
        f"-- Version: {version}",
    ]
    if zero_downtime is not None:
        lines.append(f"-- @zero-downtime: {'true' if zero_downtime else 'false'}")
    deps = list(deps)
    if deps:
        lines.append(f"-- @dependencies: {', '.join(deps)}")
    lines.extend(line if line.startswith("--") else f"-- {line}" for line in extra_header)
    return "\n".join(lines) + "\n\n" + _body(sql)


def rollback_text(version: str, description: str, sql: str) -> str:
    """A rollback file: first line `-- Rollback: <version>_<slug>_rollback.sql`, then `sql`."""
    return f"-- Rollback: {rollback_name(version, description)}\n\n" + _body(sql)


def migration_pair(
    version: str,
    description: str,
    sql: str,
    *,
    rollback_sql: str = "SELECT 1;",
    deps: Iterable[str] = (),
    zero_downtime: bool | None = None,
    extra_header: Iterable[str] = (),
) -> dict[str, str]:
    """{file name: text} for a migration and its rollback, ready for `make_project`."""
    return {
        migration_name(version, description): migration_text(
            version,
            description,
            sql,
            deps=deps,
            zero_downtime=zero_downtime,
            extra_header=extra_header,
        ),
        rollback_name(version, description): rollback_text(version, description, rollback_sql),
    }


class ProjectMaker:
    """Writes files into a project folder; calling it again adds or overwrites files."""

    migration_text = staticmethod(migration_text)
    rollback_text = staticmethod(rollback_text)

    def __init__(self, root: Path) -> None:
        self.root = root

    def __call__(self, files: dict[str, str], *, subdir: str = "migrations") -> Path:
        """Write `files` (name -> text) into `root/subdir` and return the project root.

        `subdir=""` writes at the root (pyproject.toml, .env); names may contain `/`.
        The folder is created even when `files` is empty.
        """
        folder = self.root / subdir if subdir else self.root
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        return self.root


def rename_migrations(first: str, second: str) -> dict[str, str]:
    """``accounts (id, name)`` at ``first``, and at ``second`` the rename of ``name`` to
    ``full_name`` as an `@expand-contract` migration: the expand tests' common project."""
    return {
        **migration_pair(
            first, "accounts", "CREATE TABLE accounts (id bigint PRIMARY KEY, name text);"
        ),
        **migration_pair(
            second,
            "rename name",
            "ALTER TABLE accounts RENAME COLUMN name TO full_name;",
            rollback_sql="ALTER TABLE accounts RENAME COLUMN full_name TO name;",
            extra_header=["@expand-contract: true"],
        ),
    }


def tenant_fleet(root: Path, db_url: str, tenants: Iterable[str]) -> Path:
    """A fleet.toml in ``root`` with one target per tenant schema of ``db_url``."""
    lines: list[str] = []
    for tenant in tenants:
        lines += ["[[target]]", f'name = "{tenant}"', f'url = "{db_url}"', f'schema = "{tenant}"']
    path = root / "fleet.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def make_project(tmp_path: Path) -> ProjectMaker:
    """`make_project({"2025..._x.sql": text, ...})` -> project root with those migrations."""
    return ProjectMaker(tmp_path)
