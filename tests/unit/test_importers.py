"""The pure half of `pgshift import`: each tool's layout read, ids mapped to versions, files
rendered (header, then the source SQL byte for byte), history rows interpreted."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pgshift.source.header import parse_header
from pgshift.source.importers import (
    ImportRefused,
    SourceMigration,
    convert,
    map_versions,
    tool_named,
)
from pgshift.source.loader import read_migrations


def write(root: Path, files: dict[str, str | bytes]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_bytes(text.encode("utf-8"))
    return root


def test_versions_keep_the_source_order_and_depend_only_on_the_ids() -> None:
    assert map_versions(["2017-03-18-181441", "20170319000000"]) == (
        "timestamp",
        ("20170318181441", "20170319000000"),
    )
    # Diesel's initial setup sorts first, at the epoch.
    assert map_versions(["00000000000000", "2017-03-18-181441"])[1][0] == "19700101000000"
    # Integers (sequences, Unix times) are that many seconds after 1970.
    assert map_versions(["1", "2", "10"]) == (
        "unix-seconds",
        ("19700101000001", "19700101000002", "19700101000010"),
    )
    assert map_versions(["1500360784"])[1] == ("20170718065304",)
    # Dotted (Flyway) versions fall back to their position.
    assert map_versions(["1", "1.1", "2"]) == (
        "sequence",
        ("19700101000001", "19700101000002", "19700101000003"),
    )
    # A mix that would reorder under one scheme takes the next.
    assert map_versions(["1", "10", "2"])[0] == "sequence"


def test_diesel_folders_with_metadata_and_an_empty_down(tmp_path: Path) -> None:
    up = "CREATE TABLE users (id bigint PRIMARY KEY);\r\n-- keep me\r\n"
    src = write(
        tmp_path / "src",
        {
            "00000000000000_diesel_initial_setup/up.sql": "SELECT 1;\n",
            "00000000000000_diesel_initial_setup/down.sql": "-- nothing\n",
            "2017-03-18-181441_create_users/up.sql": up,
            "2017-03-18-181441_create_users/down.sql": "DROP TABLE users;\n",
            "2017-03-19-000000_index_users/up.sql": "CREATE INDEX CONCURRENTLY i ON users (id);",
            "2017-03-19-000000_index_users/down.sql": "DROP INDEX CONCURRENTLY i;",
            "2017-03-19-000000_index_users/metadata.toml": "run_in_transaction = false\n",
        },
    )
    tool = tool_named("diesel")
    scheme, files = convert(tool, tool.read(src))
    assert scheme == "timestamp"
    setup, users, index = files
    assert setup.migration_name == "19700101000000_diesel_initial_setup.sql"
    assert setup.irreversible and "-- @lint-ignore: missing-rollback" in setup.migration_text
    assert users.migration_name == "20170318181441_create_users.sql"
    assert users.migration_text.endswith("\n\n" + up)  # byte for byte, CRLF kept
    assert "-- @imported-from: diesel 2017-03-18-181441" in users.migration_text
    body = "-- Rollback: 20170318181441_create_users_rollback.sql\n\nDROP TABLE users;\n"
    stamp = hashlib.sha256(body.encode()).hexdigest()
    assert users.rollback_text == (
        "-- Rollback: 20170318181441_create_users_rollback.sql\n"
        f"-- @import-checksum: sha256:{stamp}\n\nDROP TABLE users;\n"
    )
    assert "-- @transaction: false" in index.migration_text
    assert "-- @transaction: false" in (index.rollback_text or "")
    header, problems = parse_header(users.migration_text, "x.sql")
    assert problems == [] and header.unknown == ()
    assert header.metadata()["imported-from"] == "diesel 2017-03-18-181441"


def test_the_written_files_load_cleanly(tmp_path: Path) -> None:
    src = write(
        tmp_path / "src",
        {
            "1_create_users.up.sql": "CREATE TABLE users (id bigint);\n",
            "1_create_users.down.sql": "DROP TABLE users;\n",
            "2_add_name.up.sql": "ALTER TABLE users ADD COLUMN name text;\n",
        },
    )
    tool = tool_named("golang-migrate")
    _, files = convert(tool, tool.read(src))
    out = tmp_path / "migrations"
    out.mkdir()
    for f in files:
        (out / f.migration_name).write_text(f.migration_text)
        if f.rollback_name and f.rollback_text:
            (out / f.rollback_name).write_text(f.rollback_text)
    loaded = read_migrations(out)
    assert loaded.problems == ()
    assert [m.name for m in loaded.migrations] == [
        "19700101000001_create_users",
        "19700101000002_add_name",
    ]
    second = loaded.migrations[1]
    assert second.rollback is None and "missing-rollback" in second.header.lint_ignore
    assert all(m.header.transaction for m in loaded.migrations)  # golang-migrate has no marker


def test_dbmate_sections_and_markers(tmp_path: Path) -> None:
    text = (
        "-- migrate:up transaction:false\n"
        "CREATE INDEX CONCURRENTLY i ON t (a);\n\n"
        "-- migrate:down\n"
        "DROP INDEX i;\n"
    )
    src = write(
        tmp_path / "src",
        {
            "20240101120000_create_t.sql": "-- migrate:up\nCREATE TABLE t (a int);\n"
            "-- migrate:down\n",
            "20240102120000_index_t.sql": text,
        },
    )
    tool = tool_named("dbmate")
    scheme, (create, index) = convert(tool, tool.read(src))
    assert scheme == "timestamp"
    assert create.irreversible  # an empty down
    assert create.migration_text.endswith("\n\nCREATE TABLE t (a int);\n")
    assert "-- @transaction: false" in index.migration_text
    assert index.migration_text.endswith("\n\nCREATE INDEX CONCURRENTLY i ON t (a);\n\n")
    assert index.rollback_text is not None and index.rollback_text.endswith("\n\nDROP INDEX i;\n")
    assert "@transaction" not in index.rollback_text


def test_dbmate_without_an_up_marker_is_refused(tmp_path: Path) -> None:
    src = write(tmp_path / "src", {"20240101120000_x.sql": "CREATE TABLE t ();\n"})
    with pytest.raises(ImportRefused, match="migrate:up"):
        tool_named("dbmate").read(src)


def test_flyway_versions_undo_conf_and_repeatables(tmp_path: Path) -> None:
    src = write(
        tmp_path / "src",
        {
            "V1__Create_users.sql": "CREATE TABLE users (id int);\n",
            "U1__Create_users.sql": "DROP TABLE users;\n",
            "sub/V1_1__Add_name.sql": "ALTER TABLE users ADD name text;\n",
            "V2__Index.sql": "CREATE INDEX CONCURRENTLY i ON users (id);\n",
            "V2__Index.sql.conf": "executeInTransaction=false\n",
            "R__views.sql": "CREATE OR REPLACE VIEW v AS SELECT 1;\n",
        },
    )
    tool = tool_named("flyway")
    source = tool.read(src)
    assert [m.id for m in source.migrations] == ["1", "1.1", "2"]
    assert any("R__views.sql" in s and "repeatable" in s for s in source.skipped)
    scheme, (users, name, index) = convert(tool, source)
    assert scheme == "sequence"
    assert users.migration_name == "19700101000001_create_users.sql" and not users.irreversible
    assert name.irreversible and "-- @imported-from: flyway 1.1" in name.migration_text
    assert "-- @transaction: false" in index.migration_text


def _ms(*ids: str) -> list[SourceMigration]:
    return [SourceMigration(i, "x", "", None, Path(f"{i}.sql")) for i in ids]


def test_history_rows_are_interpreted_per_tool() -> None:
    gm = tool_named("golang-migrate")
    assert gm.interpret([(2, False)], _ms("1", "2", "3")).applied == ("1", "2")
    dirty = gm.interpret([(2, True)], _ms("1", "2", "3"))
    assert dirty.refused and "version 2 is dirty" in dirty.refused[0]
    assert gm.interpret([(9, False)], _ms("1")).unknown == ("9",)

    diesel = tool_named("diesel")
    seen = diesel.interpret([("20170318181441",), ("20990101000000",)], _ms("2017-03-18-181441"))
    assert seen.applied == ("2017-03-18-181441",) and seen.unknown == ("20990101000000",)

    dbmate = tool_named("dbmate")
    assert dbmate.interpret([("20240101120000",)], _ms("20240101120000", "2")).applied == (
        "20240101120000",
    )

    flyway = tool_named("flyway")
    rows = [
        (1, "1", "SQL", True, "V1__a.sql"),
        (2, "1.1", "SQL", True, "V1_1__b.sql"),
        (3, None, "SQL", True, "R__v.sql"),
        (4, "1.1", "UNDO_SQL", True, "U1_1__b.sql"),
    ]
    assert flyway.interpret(rows, _ms("1", "1.1", "2")).applied == ("1",)
    failed = flyway.interpret([*rows, (5, "2", "SQL", False, "V2__c.sql")], _ms("1", "1.1", "2"))
    assert failed.refused == ("version 2 (V2__c.sql) failed: its success column is false",)
    baseline = flyway.interpret(
        [(1, "1.1", "BASELINE", True, "<< Flyway Baseline >>")], _ms("1", "1.1", "2")
    )
    assert baseline.applied == ("1", "1.1")


def test_unknown_tool_is_bad_usage() -> None:
    with pytest.raises(Exception, match="--from liquibase"):
        tool_named("liquibase")


def test_golang_migrate_pairs_up_and_down_by_version_alone(tmp_path: Path) -> None:
    """golang-migrate keys files by version and direction; the names may differ."""
    src = write(
        tmp_path / "src",
        {
            "30_add_magic_metadata.up.sql": "ALTER TABLE t ADD COLUMN m jsonb;\n",
            "30_drop_magic_metadata.down.sql": "ALTER TABLE t DROP COLUMN m;\n",
            "031_more.up.sql": "SELECT 1;\n",
            "31_more.down.sql": "SELECT 2;\n",
            "40_orphan.down.sql": "SELECT 3;\n",
        },
    )
    tool = tool_named("golang-migrate")
    source = tool.read(src)
    assert [(m.id, m.down) for m in source.migrations] == [
        ("30", "ALTER TABLE t DROP COLUMN m;\n"),
        ("031", "SELECT 2;\n"),
    ]
    assert [s.split(":")[0] for s in source.skipped] == [str(src / "40_orphan.down.sql")]
    (src / "030_again.down.sql").write_text("SELECT 4;\n")
    with pytest.raises(ImportRefused, match="both the down file of version 30"):
        tool.read(src)
