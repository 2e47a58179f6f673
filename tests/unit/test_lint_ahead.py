"""Linting while reading (lint/ahead.py): the same findings as linting after, or it declines."""

from __future__ import annotations

from pathlib import Path

from pgshift.lint.ahead import LintAhead
from pgshift.lint.engine import Linter
from pgshift.lint.finding import Finding
from pgshift.source.loader import read_migrations
from pgshift.source.statement_cache import StatementCache
from tests.plugins.project import ProjectMaker, migration_pair, migration_text, rollback_text

CHECK = (
    "ALTER TABLE users ADD CONSTRAINT email_nn CHECK (email IS NOT NULL) NOT VALID;\n"
    "ALTER TABLE users VALIDATE CONSTRAINT email_nn;\n"
)
SET_NOT_NULL = "ALTER TABLE users ALTER COLUMN email SET NOT NULL;\n"


def _project(make_project: ProjectMaker) -> Path:
    root = make_project(
        {
            **migration_pair("20250101000000", "check_email", CHECK),
            **migration_pair("20250102000000", "email_not_null", SET_NOT_NULL),
            **migration_pair(
                "20250103000000", "name_not_null", SET_NOT_NULL.replace("email", "name")
            ),
            # -- pgshift-ignore before a statement, and a rollback with its own finding
            **migration_pair(
                "20250104000000",
                "index",
                "-- pgshift-ignore: require-concurrent-index\nCREATE INDEX i ON users (email);\n",
            ),
            "20250105000000_bad.sql": "-- Migration: 20250105000000_bad.sql\nDROP TABLEE x;\n",
        }
    )
    return root / "migrations"


def _both(folder: Path) -> tuple[list[Finding] | None, list[Finding]]:
    ahead = LintAhead(16)
    loaded = read_migrations(folder, StatementCache(), None, ahead)
    bad = frozenset(p.file for p in loaded.problems)
    linted = ahead.findings(loaded.migrations, bad)
    after = Linter(16).lint_migrations(loaded.migrations, bad)
    return ([f for found in linted for f in found] if linted is not None else None), list(after)


def test_findings_while_reading_are_the_findings_after(make_project: ProjectMaker) -> None:
    ahead, after = _both(_project(make_project))
    assert ahead == after
    codes = [f.code for f in after]
    assert codes.count("set-not-null") == 1  # name's; email's is proven by the check before
    assert "unused-ignore" not in codes and "invalid-file" not in codes


def test_a_dependency_on_a_later_migration_is_linted_after_reading(
    make_project: ProjectMaker,
) -> None:
    """Plan order is not name order any more: what was learned while reading is not used."""
    first = "20250101000000_email_not_null"
    root = make_project(
        {
            f"{first}.sql": migration_text(
                "20250101000000", "email_not_null", SET_NOT_NULL, deps=["20250102000000"]
            ),
            f"{first}_rollback.sql": rollback_text("20250101000000", "email_not_null", "SELECT 1;"),
            **migration_pair("20250102000000", "check_email", CHECK),
        }
    )
    folder = root / "migrations"
    ahead = LintAhead(16)
    loaded = read_migrations(folder, StatementCache(), None, ahead)
    assert [m.version for m in loaded.migrations] == ["20250102000000", "20250101000000"]
    assert ahead.findings(loaded.migrations, frozenset()) is None
    after = Linter(16).lint_migrations(loaded.migrations)
    assert "set-not-null" not in [f.code for f in after]  # the check runs first in the plan


def test_files_from_the_memo_are_not_linted_while_reading(make_project: ProjectMaker) -> None:
    folder = _project(make_project)
    cache = StatementCache()
    read_migrations(folder, cache)
    edited = folder / "20250103000000_name_not_null.sql"
    edited.write_text(edited.read_text() + "\n-- edited\n")
    memo = StatementCache.from_bytes(cache.to_bytes())
    ahead = LintAhead(16)
    loaded = read_migrations(folder, memo, None, ahead)
    assert ahead.findings(loaded.migrations, frozenset()) is None
