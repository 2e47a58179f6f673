"""Tests of reading a migrations folder: pairing, checksums, every problem kind, and order."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

import pytest

from pgshift.errors import ConfigError, InputError
from pgshift.source.loader import LoadResult, checksum_text, load_migrations, read_migrations
from pgshift.source.sql import split_and_checksum

USERS = """\
-- Migration: 20250527100000_create_users_table.sql
-- Description: Create the users table
-- Created: 2025-05-27
-- Version: 20250527100000
-- @zero-downtime: true
-- @estimated-duration: 10 seconds
-- @risk-level: low

CREATE TABLE users (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    email TEXT NOT NULL UNIQUE
);
"""

USERS_ROLLBACK = """\
-- Rollback: 20250527100000_create_users_table_rollback.sql
-- Description: Rollback for creating the users table
-- Version: 20250527100000

DROP TABLE IF EXISTS users;
"""

PREFERENCES = """\
-- Migration: 20250528120000_add_user_preferences_table.sql
-- Description: Add user preferences table for storing user settings
-- Created: 2025-05-28
-- Version: 20250528120000
-- @zero-downtime: true
-- @estimated-duration: 30 seconds
-- @risk-level: low
-- @dependencies: 20250527100000_create_users_table

-- Create the user preferences table
CREATE TABLE user_preferences (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    preference_key VARCHAR(255) NOT NULL,
    preference_value JSONB,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),

    CONSTRAINT user_preferences_unique_key UNIQUE (user_id, preference_key)
);

-- Add indexes for performance
CREATE INDEX CONCURRENTLY idx_user_preferences_user_id ON user_preferences(user_id);
CREATE INDEX CONCURRENTLY idx_user_preferences_key ON user_preferences(preference_key);
"""

PREFERENCES_ROLLBACK = """\
-- Rollback: 20250528120000_add_user_preferences_table_rollback.sql
-- Description: Rollback for adding user preferences table
-- Created: 2025-05-28
-- Version: 20250528120000

-- Drop indexes first
DROP INDEX IF EXISTS idx_user_preferences_key;
DROP INDEX IF EXISTS idx_user_preferences_user_id;

-- Drop the table
DROP TABLE IF EXISTS user_preferences;
"""

SEED = {
    "20250527100000_create_users_table.sql": USERS,
    "20250527100000_create_users_table_rollback.sql": USERS_ROLLBACK,
    "20250528120000_add_user_preferences_table.sql": PREFERENCES,
    "20250528120000_add_user_preferences_table_rollback.sql": PREFERENCES_ROLLBACK,
}


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ``migrations`` folder, addressed relatively so messages are predictable."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "migrations").mkdir()
    return Path("migrations")


def write(folder: Path, files: Mapping[str, str | bytes]) -> None:
    for name, content in files.items():
        path = folder / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8", newline="")


def simple(
    version: str, description: str, body: str = "SELECT 1;\n", header: str = ""
) -> dict[str, str]:
    """A migration and its rollback with a minimal body."""
    return {
        f"{version}_{description}.sql": header + body,
        f"{version}_{description}_rollback.sql": "SELECT 2;\n",
    }


def rendered(result: LoadResult) -> list[str]:
    return [str(p) for p in result.problems]


def test_seed_example(folder: Path) -> None:
    write(folder, SEED)
    result = read_migrations(folder)
    assert result.problems == ()
    assert result.warnings == ()
    users, prefs = result.migrations
    assert (users.version, users.description) == ("20250527100000", "create_users_table")
    assert users.path == folder / "20250527100000_create_users_table.sql"
    assert users.dependencies == ()
    assert prefs.name == "20250528120000_add_user_preferences_table"
    assert prefs.dependencies == ("20250527100000",)
    assert prefs.header.dependencies == ("20250527100000_create_users_table",)
    assert prefs.header.estimated_duration_ms == 30_000
    assert [s.kind for s in prefs.statements] == ["CreateStmt", "IndexStmt", "IndexStmt"]
    assert [s.transactional for s in prefs.statements] == [True, False, False]
    assert [s.concurrent_index for s in prefs.statements] == [
        None,
        (None, "idx_user_preferences_user_id"),
        (None, "idx_user_preferences_key"),
    ]
    assert prefs.statements[1].line == 23
    assert prefs.transactional is False
    assert users.transactional is True
    assert prefs.text_checksum == hashlib.sha256(PREFERENCES.encode()).hexdigest()
    assert prefs.checksum == split_and_checksum(PREFERENCES, "p.sql")[2]
    assert prefs.text == PREFERENCES
    assert prefs.rollback is not None
    assert prefs.rollback.path == folder / "20250528120000_add_user_preferences_table_rollback.sql"
    assert prefs.rollback.text_checksum == checksum_text(PREFERENCES_ROLLBACK)
    assert prefs.rollback.checksum == split_and_checksum(PREFERENCES_ROLLBACK, "r.sql")[2]
    assert prefs.rollback.header.migration == (
        "20250528120000_add_user_preferences_table_rollback.sql"
    )
    assert [s.kind for s in prefs.rollback.statements] == ["DropStmt", "DropStmt", "DropStmt"]
    assert load_migrations(folder) == result.migrations


def test_dependencies_decide_the_order(folder: Path) -> None:
    write(folder, simple("20250101000000", "a", header="-- @dependencies: 20250103000000\n"))
    write(folder, simple("20250102000000", "b"))
    write(folder, simple("20250103000000", "c"))
    assert [m.version for m in load_migrations(folder)] == [
        "20250102000000",
        "20250103000000",
        "20250101000000",
    ]


def test_dependency_forms_resolve_to_versions(folder: Path) -> None:
    write(folder, simple("20250101000000", "a"))
    write(folder, simple("20250102000000", "b"))
    header = "-- @dependencies: 20250101000000, 20250102000000_b.sql, 20250101000000_a\n"
    write(folder, simple("20250103000000", "c", header=header))
    assert load_migrations(folder)[-1].dependencies == ("20250101000000", "20250102000000")


def test_ignores_other_and_hidden_files(folder: Path) -> None:
    write(folder, simple("20250101000000", "a"))
    write(folder, {"README.md": "notes", ".20250102000000_draft.sql": "garbage", "x.sql.bak": "?"})
    (folder / "sub.sql").mkdir()
    assert [m.version for m in load_migrations(folder)] == ["20250101000000"]


def test_empty_folder(folder: Path) -> None:
    assert read_migrations(folder) == LoadResult((), (), ())


def test_missing_directory(folder: Path) -> None:
    with pytest.raises(ConfigError, match="migrations directory nowhere does not exist"):
        read_migrations(Path("nowhere"))


def test_directory_that_is_a_file(folder: Path) -> None:
    write(folder, {"plain.sql": "SELECT 1;"})
    with pytest.raises(ConfigError, match=r"migrations directory .*plain.sql is not a directory"):
        load_migrations(folder / "plain.sql")


def test_bad_file_name(folder: Path) -> None:
    write(folder, {"20251301000000_bad_month.sql": "SELECT 1;", "Add-Users.sql": "SELECT 1;"})
    result = read_migrations(folder)
    assert rendered(result) == [
        "migrations/20251301000000_bad_month.sql:1: bad file name: '20251301000000_bad_month.sql':"
        " version 20251301000000 is not a valid date-time YYYYMMDDHHMMSS (month must be in 1..12);"
        " expected YYYYMMDDHHMMSS_description_of_change.sql"
        " (or YYYYMMDDHHMMSS_description_of_change_rollback.sql)",
        "migrations/Add-Users.sql:1: bad file name: 'Add-Users.sql': version 'Add-Users' is not"
        " 14 digits (YYYYMMDDHHMMSS); expected YYYYMMDDHHMMSS_description_of_change.sql"
        " (or YYYYMMDDHHMMSS_description_of_change_rollback.sql)",
    ]
    assert result.migrations == ()


def test_non_utf8_file_names_the_line(folder: Path) -> None:
    write(folder, {"20250101000000_a.sql": b"-- ok\r\nSELECT 1;\r\nSELECT 'caf\xe9';\n"})
    assert rendered(read_migrations(folder)) == [
        "migrations/20250101000000_a.sql:3: file is not valid UTF-8 (byte 0xe9 on this line);"
        " save it as UTF-8"
    ]


def test_header_that_disagrees_with_the_file_name(folder: Path) -> None:
    write(
        folder,
        {
            "20250101000000_a.sql": "-- Migration: 20250101000000_b.sql\n"
            "-- Version: 20250101000001\nSELECT 1;",
            "20250101000000_a_rollback.sql": "-- Rollback: 20250101000000_a.sql\n\n"
            "-- Version: 20250202000000\nSELECT 1;",
        },
    )
    assert rendered(read_migrations(folder)) == [
        "migrations/20250101000000_a.sql:1: header '-- Migration: 20250101000000_b.sql' does not"
        " match the file name '20250101000000_a.sql'",
        "migrations/20250101000000_a.sql:2: header '-- Version: 20250101000001' does not match"
        " the file's version 20250101000000",
        "migrations/20250101000000_a_rollback.sql:1: header '-- Rollback: 20250101000000_a.sql'"
        " does not match the file name '20250101000000_a_rollback.sql'",
        "migrations/20250101000000_a_rollback.sql:3: header '-- Version: 20250202000000' does not"
        " match the file's version 20250101000000",
    ]


def test_header_may_omit_the_sql_suffix(folder: Path) -> None:
    write(folder, simple("20250101000000", "a", header="-- Migration: 20250101000000_a\n"))
    assert read_migrations(folder).problems == ()


def test_bad_metadata_value(folder: Path) -> None:
    write(
        folder,
        simple(
            "20250101000000", "a", header="-- Version: 20250101000000\n-- @risk-level: extreme\n"
        ),
    )
    assert rendered(read_migrations(folder)) == [
        "migrations/20250101000000_a.sql:2: bad value 'extreme' for @risk-level: expected one of"
        " low, medium, high"
    ]


def test_sql_that_does_not_parse(folder: Path) -> None:
    write(
        folder,
        {
            "20250101000000_a.sql": "-- @risk-level: low\n\nCREATE TABEL t (id int);\n",
            "20250101000000_a_rollback.sql": "DROP TABLE t;\nDROP TABLE IF EXIST u;\n",
        },
    )
    result = read_migrations(folder)
    assert rendered(result) == [
        'migrations/20250101000000_a.sql:3:8: syntax error at or near "TABEL"',
        'migrations/20250101000000_a_rollback.sql:2:15: syntax error at or near "EXIST"',
    ]
    (migration,) = result.migrations
    assert migration.statements == ()


def test_transaction_control_in_a_file(folder: Path) -> None:
    write(
        folder, simple("20250101000000", "a", body="BEGIN;\nCREATE TABLE t (id int);\n  COMMIT;\n")
    )
    message = (
        "BEGIN/COMMIT are not allowed in a migration file: pgshift runs each migration in its own"
        " transaction"
    )
    assert rendered(read_migrations(folder)) == [
        f"migrations/20250101000000_a.sql:1:1: {message}",
        f"migrations/20250101000000_a.sql:3:3: {message}",
    ]


def test_transaction_control_in_a_rollback_file(folder: Path) -> None:
    write(
        folder,
        {"20250101000000_a.sql": "SELECT 1;", "20250101000000_a_rollback.sql": "\nROLLBACK;"},
    )
    assert [p.line for p in read_migrations(folder).problems] == [2]


def test_duplicate_version_names_both_files(folder: Path) -> None:
    write(folder, simple("20250101000000", "a"))
    write(folder, simple("20250101000000", "b"))
    result = read_migrations(folder)
    assert rendered(result) == [
        "migrations/20250101000000_b.sql:1: duplicate version 20250101000000:"
        " migrations/20250101000000_a.sql and migrations/20250101000000_b.sql both use it;"
        " give one of them a new version",
    ]
    assert [m.name for m in result.migrations] == ["20250101000000_a"]


def test_rollback_without_forward_file(folder: Path) -> None:
    write(folder, {"20250101000000_a_rollback.sql": "SELECT 1;"})
    write(folder, simple("20250102000000", "b"))
    write(folder, {"20250102000000_c_rollback.sql": "SELECT 1;"})
    assert rendered(read_migrations(folder)) == [
        "migrations/20250101000000_a_rollback.sql:1: rollback file without a migration: expected"
        " 20250101000000_a.sql beside it",
        "migrations/20250102000000_c_rollback.sql:1: rollback file without a migration: expected"
        " 20250102000000_c.sql beside it (version 20250102000000 is 20250102000000_b.sql)",
    ]


def test_unreadable_forward_file_does_not_orphan_its_rollback(folder: Path) -> None:
    write(folder, {"20250101000000_a.sql": b"\xff", "20250101000000_a_rollback.sql": "SELECT 1;"})
    assert [p.file for p in read_migrations(folder).problems] == ["migrations/20250101000000_a.sql"]


def test_missing_rollback_is_a_warning(folder: Path) -> None:
    write(folder, {"20250101000000_a.sql": "SELECT 1;"})
    result = read_migrations(folder)
    assert result.problems == ()
    assert [str(w) for w in result.warnings] == [
        "migrations/20250101000000_a.sql:1: no rollback file: expected"
        " 20250101000000_a_rollback.sql beside it"
    ]
    (migration,) = load_migrations(folder)
    assert migration.rollback is None


def test_unknown_annotation_is_a_warning(folder: Path) -> None:
    write(folder, simple("20250101000000", "a", header="-- Description: x\n-- @owner: team-db\n"))
    result = read_migrations(folder)
    assert result.problems == ()
    assert [str(w) for w in result.warnings] == [
        "migrations/20250101000000_a.sql:2: unknown annotation @owner is ignored (known:"
        " @zero-downtime, @estimated-duration, @risk-level, @dependencies, @transaction,"
        " @lock-timeout, @statement-timeout, @lint-ignore, @kind, @batch-key, @batch-size,"
        " @batch-pause, @expand-contract, @expand-down)"
    ]
    assert result.migrations[0].header.metadata() == {"owner": "team-db"}


def test_unknown_dependency(folder: Path) -> None:
    header = "-- Version: 20250102000000\n-- @dependencies: 20250101000000, 20241231000000_gone\n"
    write(folder, simple("20250101000000", "a"))
    write(folder, simple("20250102000000", "b", header=header))
    assert rendered(read_migrations(folder)) == [
        "migrations/20250102000000_b.sql:2: unknown dependency '20241231000000_gone': no migration"
        " with version 20241231000000"
    ]


def test_dependency_name_that_disagrees_with_the_file(folder: Path) -> None:
    write(folder, simple("20250101000000", "create_users"))
    write(
        folder,
        simple("20250102000000", "b", header="-- @dependencies: 20250101000000_create_user\n"),
    )
    assert rendered(read_migrations(folder)) == [
        "migrations/20250102000000_b.sql:1: dependency '20250101000000_create_user' does not match"
        " the migration with version 20250101000000, which is '20250101000000_create_users'"
    ]


def test_dependency_cycle(folder: Path) -> None:
    write(
        folder, simple("20250101000000", "a", header="-- x\n-- @dependencies: 20250103000000_c\n")
    )
    write(folder, simple("20250102000000", "b", header="-- @dependencies: 20250101000000\n"))
    write(folder, simple("20250103000000", "c", header="-- @dependencies: 20250102000000\n"))
    result = read_migrations(folder)
    assert rendered(result) == [
        "migrations/20250101000000_a.sql:2: dependency cycle: 20250101000000 -> 20250103000000"
        " -> 20250102000000 -> 20250101000000"
    ]
    assert [m.version for m in result.migrations] == [
        "20250101000000",
        "20250102000000",
        "20250103000000",
    ]
    with pytest.raises(InputError) as err:
        load_migrations(folder)
    assert err.value.problems == result.problems
    assert "1 problem in the migration files:" in err.value.message


def test_self_dependency_is_a_cycle(folder: Path) -> None:
    write(folder, simple("20250101000000", "a", header="-- @dependencies: 20250101000000\n"))
    assert rendered(read_migrations(folder)) == [
        "migrations/20250101000000_a.sql:1: dependency cycle: 20250101000000 -> 20250101000000"
    ]


def test_every_problem_is_reported_at_once(folder: Path) -> None:
    write(
        folder,
        {"bad.sql": "", "20250101000000_a.sql": "SELEC 1;", "20250102000000_b.sql": "BEGIN;"},
    )
    with pytest.raises(InputError) as err:
        load_migrations(folder)
    assert [p.file for p in err.value.problems] == [
        "migrations/20250101000000_a.sql",
        "migrations/20250102000000_b.sql",
        "migrations/bad.sql",
    ]


def test_byte_order_mark_is_not_part_of_the_sql(folder: Path) -> None:
    write(folder, simple("20250101000000", "a", body="\ufeff-- @risk-level: low\nSELECT 1;\n"))
    (migration,) = load_migrations(folder)
    assert migration.header.risk_level == "low"
    assert migration.statements[0].sql == "SELECT 1"


def test_crlf_only_change_keeps_the_checksum(folder: Path) -> None:
    write(folder, {"20250101000000_a.sql": "SELECT 1;\r\nSELECT 2;\r\n"})
    (migration,) = load_migrations(folder)
    assert migration.text_checksum == checksum_text("SELECT 1;\nSELECT 2;\n")
    assert migration.checksum == split_and_checksum("SELECT 1;\nSELECT 2;\n", "m.sql")[2]


def test_checksum_text() -> None:
    lf = "CREATE TABLE t ();\nSELECT 1;\n"
    assert checksum_text(lf) == hashlib.sha256(lf.encode()).hexdigest()
    assert checksum_text(lf.replace("\n", "\r\n")) == checksum_text(lf)
    assert checksum_text(lf.replace("\n", "\r")) == checksum_text(lf)
    assert checksum_text(lf + " ") != checksum_text(lf)
    assert checksum_text("é") == hashlib.sha256("é".encode()).hexdigest()


@pytest.mark.parametrize(
    ("body", "line", "reason"),
    [
        ("ALTER TABLE t ADD COLUMN a int;\n", 2, "this is ALTER TABLE"),
        ("UPDATE t SET a = 1;\nUPDATE t SET b = 1;\n", 3, "this file has 2"),
        ("\n", 1, "this file has 0"),
        ("UPDATE t SET a = 1 RETURNING a;\n", 2, "has RETURNING"),
        ("WITH d AS (DELETE FROM t RETURNING *)\nINSERT INTO u SELECT * FROM d;\n", 2, "WITH"),
    ],
)
def test_a_backfill_file_that_cannot_be_one_is_refused(
    tmp_path: Path, body: str, line: int, reason: str
) -> None:
    (tmp_path / "20250101000000_fill.sql").write_text("-- @kind: backfill\n" + body)
    (tmp_path / "20250101000000_fill_rollback.sql").write_text("SELECT 1;\n")
    with pytest.raises(InputError) as caught:
        load_migrations(tmp_path)
    assert caught.value.exit_code == 2
    [problem] = caught.value.problems
    assert (Path(problem.file).name, problem.line) == ("20250101000000_fill.sql", line)
    assert reason in problem.message


def test_a_backfill_and_its_backfill_rollback_load(tmp_path: Path) -> None:
    (tmp_path / "20250101000000_fill.sql").write_text(
        "-- @kind: backfill\n-- @batch-size: 100\nUPDATE t SET a = a + 1 WHERE a < 10;\n"
    )
    (tmp_path / "20250101000000_fill_rollback.sql").write_text(
        "-- @kind: backfill\nUPDATE t SET a = a - 1;\n"
    )
    [migration] = load_migrations(tmp_path)
    assert (migration.header.kind, migration.header.batch_size) == ("backfill", 100)
    assert migration.rollback is not None and migration.rollback.header.kind == "backfill"


def test_a_rollback_backfill_is_checked_too(tmp_path: Path) -> None:
    (tmp_path / "20250101000000_fill.sql").write_text("UPDATE t SET a = 1;\n")
    (tmp_path / "20250101000000_fill_rollback.sql").write_text("-- @kind: backfill\nTRUNCATE t;\n")
    with pytest.raises(InputError, match="this is TRUNCATE"):
        load_migrations(tmp_path)
