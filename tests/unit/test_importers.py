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


# -- ory/popx --------------------------------------------------------------------------------------

CREATE_GENERIC = "CREATE TABLE identities (id UUID PRIMARY KEY, traits JSON NOT NULL);\n"
CREATE_PG = "CREATE TABLE identities (id UUID PRIMARY KEY, traits jsonb NOT NULL);\n"


def test_popx_takes_the_postgres_file_else_the_generic_one(tmp_path: Path) -> None:
    """kratos's layout in small: per version the `.postgres` file wins over the generic one (an
    empty one too: "nothing to do on PostgreSQL"), other dialects are left out and counted, a
    version with only other dialects is not PostgreSQL's, `.autocommit` runs outside a
    transaction, and versions keep popx's string order (20 digits become a sequence)."""
    src = write(
        tmp_path / "sql",
        {
            "20150100000001000000_networks.postgres.up.sql": "CREATE TABLE networks (id UUID);\n",
            "20150100000001000000_networks.postgres.down.sql": "DROP TABLE networks;\n",
            "20191100000001000000_identities.up.sql": CREATE_GENERIC,
            "20191100000001000000_identities.postgres.up.sql": CREATE_PG,
            "20191100000001000000_identities.mysql.up.sql": "CREATE TABLE identities (x int);\n",
            "20191100000001000000_identities.down.sql": "DROP TABLE identities;\n",
            "20191100000001000001_identities.sqlite3.up.sql": "SELECT 1;\n",
            "20191100000001000001_identities.sqlite3.down.sql": "SELECT 1;\n",
            "20191100000002000000_requests.up.sql": "ALTER TABLE identities ADD COLUMN r int;\n",
            "20191100000002000000_requests.postgres.up.sql": "",
            "20191100000002000000_requests.cockroach.up.sql": "SELECT 1;\n",
            "20191100000002000000_requests.down.sql": "",
            "20200519101057000000_index.postgres.autocommit.up.sql": (
                "CREATE INDEX CONCURRENTLY identities_r ON identities (r);\n"
            ),
            "20200519101057000000_index.postgres.autocommit.down.sql": (
                "DROP INDEX CONCURRENTLY identities_r;\n"
            ),
            "20200519101058000000_seed.autocommit.up.sql": "SELECT 2;\n",
            "20200519101058000000_seed.down.sql": "SELECT 3;\n",
            "20200519101059000000_old.up.fizz": 'create_table("x") {}\n',
            "README.md": "not a migration\n",
        },
    )
    tool = tool_named("popx")
    source = tool.read(src)
    assert [(m.id, m.name, m.transaction, m.down_transaction) for m in source.migrations] == [
        ("20150100000001000000", "networks", True, True),
        ("20191100000001000000", "identities", True, True),
        ("20191100000002000000", "requests", True, True),
        ("20200519101057000000", "index", False, False),
        ("20200519101058000000", "seed", False, True),
    ]
    networks, identities, requests, index, _seed = source.migrations
    assert identities.up == CREATE_PG and identities.down == "DROP TABLE identities;\n"
    assert identities.path == src / "20191100000001000000_identities.postgres.up.sql"
    assert requests.up == "" and requests.down == ""
    assert index.down == "DROP INDEX CONCURRENTLY identities_r;\n"
    assert source.skipped == (
        f"{src / '20200519101059000000_old.up.fizz'}: a fizz file: pgshift imports SQL only"
        " (render it to SQL with pop first)",
        "4 file(s) of other databases (1 cockroach, 1 mysql, 2 sqlite3): not PostgreSQL's",
    )
    scheme, files = convert(tool, source)
    assert scheme == "sequence"
    assert [f.version for f in files] == [f"1970010100000{n}" for n in range(1, 6)]
    assert "-- @transaction: false" in files[3].migration_text
    assert "-- @transaction: false" in (files[3].rollback_text or "")
    assert files[2].irreversible  # an empty down: nothing to revert with
    assert "-- @imported-from: popx 20191100000001000000" in files[1].migration_text
    assert networks.path.name.endswith(".postgres.up.sql")


def test_popx_refuses_two_files_of_one_version_and_dialect(tmp_path: Path) -> None:
    src = write(
        tmp_path / "sql",
        {
            "20200101000000000000_a.postgres.up.sql": "SELECT 1;\n",
            "20200101000000000000_b.pg.up.sql": "SELECT 2;\n",
        },
    )
    with pytest.raises(ImportRefused, match="both the postgres up file of version"):
        tool_named("popx").read(src)


def test_popx_history_rows_and_its_older_14_digit_rows() -> None:
    popx = tool_named("popx")
    ms = _ms("20191100000001000000", "20191100000001000001", "20200101000000000000")
    seen = popx.interpret([("20191100000001000000",), ("20990101000000000000",)], ms)
    assert seen.applied == ("20191100000001000000",)
    assert seen.unknown == ("20990101000000000000",) and seen.refused == ()
    legacy = popx.interpret([("20191100000001",)], ms)
    assert legacy.applied == ("20191100000001000000", "20191100000001000001")


def test_every_tool_names_what_it_looks_for() -> None:
    from pgshift.source.importers import tools

    looks = {name: tool.looks_for for name, tool in tools().items()}
    assert set(looks) == {"diesel", "golang-migrate", "dbmate", "flyway", "popx"}
    assert looks["popx"].startswith("<version>_<name>[.postgres][.autocommit].up.sql")
    assert all(text != "migrations" for text in looks.values())


def test_the_import_checksum_tells_an_unedited_file_from_an_edited_one(tmp_path: Path) -> None:
    from pgshift.source.importers import unedited, unstamped

    src = write(tmp_path / "src", {"1_a.up.sql": "SELECT 1;\n", "1_a.down.sql": "SELECT 2;\n"})
    tool = tool_named("golang-migrate")
    (written,) = convert(tool, tool.read(src))[1]
    for text in (written.migration_text, written.rollback_text or ""):
        rest, stated = unstamped(text)
        assert stated == hashlib.sha256(rest.encode()).hexdigest()
        assert unedited(text, text)
        assert not unedited(text.replace("SELECT", "select"), text)
        # A file an earlier pgshift wrote without the stamp: unedited when it is the rest.
        assert unedited(rest, text) and not unedited(rest + "\n", text)
    # The stamp is a known header key: no unknown-key warning, no drift (comments only).
    header, problems = parse_header(written.migration_text, "x.sql")
    assert problems == [] and header.unknown == ()
