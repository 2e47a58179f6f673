"""Backup manifests and retention from literals: no database, no pg_dump, a temporary folder."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pgshift.errors import BackupError, UsageError
from pgshift.model import SchemaObject
from pgshift.ops.manifest import (
    Manifest,
    backups_in,
    backups_to_prune,
    compare_inventories,
    get_manifest,
    new_backup_id,
    newer_than,
    prune,
    sha256_of,
    verify_checksum,
    write_manifest,
)

NOW = datetime(2025, 6, 30, 12, 0, tzinfo=UTC)
DB, SERVER = "app", "db.internal:5432"


def manifest(
    days_old: float,
    *,
    run_id: str | None = None,
    database: str = DB,
    server: str = SERVER,
    objects: tuple[SchemaObject, ...] = (),
    sha256: str = "0" * 64,
) -> Manifest:
    created = NOW - timedelta(days=days_old)
    backup_id = new_backup_id(created)
    return Manifest(
        id=backup_id,
        created_at=created.isoformat(),
        reason="before-up" if run_id else "manual",
        database=database,
        server=server,
        server_version="16.4",
        pg_dump_version="18.0",
        size_bytes=1234,
        sha256=sha256,
        versions=("20250101000000",),
        run_id=run_id,
        schema="pgshift",
        log_id=7,
        objects=objects,
        file=f"{backup_id}.dump",
    )


def pruned(
    manifests: list[Manifest],
    *,
    database: str = DB,
    retention_days: int = 30,
    protected_run_id: str | None = None,
    present: set[str] | None = None,
) -> list[str]:
    """The ids retention would remove, for this test module's database and moment."""
    chosen = backups_to_prune(
        manifests,
        database=database,
        server=SERVER,
        retention_days=retention_days,
        protected_run_id=protected_run_id,
        now=NOW,
        present=present,
    )
    return [m.id for m in chosen]


# -- retention -------------------------------------------------------------------------------------


def test_prunes_backups_older_than_the_retention_and_keeps_recent_ones() -> None:
    old, older, recent, newest = manifest(31), manifest(45), manifest(29), manifest(1)
    assert pruned([old, older, recent, newest]) == [older.id, old.id]  # oldest first


def test_the_newest_backup_is_kept_even_when_every_backup_is_old() -> None:
    a, b, c = manifest(90), manifest(80), manifest(70)
    assert pruned([c, a, b]) == [a.id, b.id]


def test_the_newest_with_its_archive_present_is_the_one_kept() -> None:
    """A newest manifest whose archive vanished is no backup to fall back to."""
    kept, lost = manifest(80), manifest(70)
    assert pruned([kept, lost], present={kept.id}) == [lost.id]


def test_the_backups_of_the_last_applying_run_are_kept() -> None:
    before_run = manifest(60, run_id="run-7")
    other, newest = manifest(50, run_id="run-6"), manifest(40)
    assert pruned([before_run, other, newest], protected_run_id="run-7") == [other.id]
    assert pruned([before_run, other, newest]) == [before_run.id, other.id]


def test_zero_days_keeps_everything() -> None:
    everything = [manifest(400), manifest(300), manifest(200)]
    assert pruned(everything, retention_days=0) == []
    assert pruned(everything, retention_days=-1) == []


def test_other_databases_and_servers_are_untouched() -> None:
    mine = manifest(100)
    elsewhere = manifest(100, server="other:5432")
    other_db = manifest(100, database="billing")
    newest = manifest(0)
    assert pruned([mine, elsewhere, other_db, newest]) == [mine.id]
    # The other database's newest backup is not this one's to keep either.
    assert pruned([other_db], database="billing") == []


def test_exactly_at_the_cutoff_is_kept() -> None:
    edge, newest = manifest(30), manifest(0)
    assert pruned([edge, newest]) == []


def test_prune_deletes_manifest_and_archive_of_what_the_decision_picks(tmp_path: Path) -> None:
    old, newest = manifest(90), manifest(1)
    for m in (old, newest):
        write_manifest(tmp_path, m)
        (tmp_path / m.file).write_bytes(b"archive")
    removed = prune(
        tmp_path,
        database=DB,
        server=SERVER,
        retention_days=30,
        protected_run_id=None,
        now=NOW,
    )
    assert removed == [old.id]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"{newest.id}.json", newest.file])


def test_prune_keeps_an_old_backup_when_the_newer_archive_is_missing(tmp_path: Path) -> None:
    old, newest = manifest(90), manifest(60)
    for m in (old, newest):
        write_manifest(tmp_path, m)
    (tmp_path / old.file).write_bytes(b"archive")  # the newest one's archive was lost
    removed = prune(
        tmp_path, database=DB, server=SERVER, retention_days=30, protected_run_id=None, now=NOW
    )
    assert removed == [newest.id]
    assert [m.id for m in backups_in(tmp_path)] == [old.id]


# -- manifests on disk -----------------------------------------------------------------------------


def test_manifest_round_trips_through_json_and_disk(tmp_path: Path) -> None:
    objects = (
        SchemaObject("table", "public.accounts", "id bigint not null", "DROP TABLE ..."),
        SchemaObject("index", 'public."Mixed Case"', "CREATE INDEX ..."),
    )
    original = manifest(3, run_id="run-1", objects=objects)
    assert Manifest.from_json(json.loads(json.dumps(original.to_json()))) == Manifest(
        **{**original.__dict__, "objects": tuple(SchemaObject(*o.key, o.shape) for o in objects)}
    )  # drop statements are not stored: they are recomputed from the live database
    path = write_manifest(tmp_path, original)
    assert path.name == f"{original.id}.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [m.id for m in backups_in(tmp_path)] == [original.id]
    assert get_manifest(tmp_path, original.id).objects[1].identity == 'public."Mixed Case"'
    assert "password" not in path.read_text()


def test_old_manifests_without_the_newer_fields_still_read() -> None:
    data = manifest(1).to_json()
    for key in ("server", "schema", "log_id", "file", "versions"):
        del data[key]
    read = Manifest.from_json(data)
    assert (read.server, read.schema, read.log_id, read.versions) == ("", "pgshift", 0, ())
    assert read.file == f"{read.id}.dump"


def test_listing_skips_foreign_and_unreadable_files_and_sorts_oldest_first(
    tmp_path: Path,
) -> None:
    newer, older = manifest(1), manifest(5)
    write_manifest(tmp_path, newer)
    write_manifest(tmp_path, older)
    (tmp_path / "notes.json").write_text("{}")
    (tmp_path / f"{new_backup_id(NOW)}.json").write_text("{not json")
    assert [m.id for m in backups_in(tmp_path)] == [older.id, newer.id]
    assert backups_in(tmp_path / "missing") == []
    with pytest.raises(UsageError, match="no backup 'nope'"):
        get_manifest(tmp_path, "nope")


def test_checksum_is_verified_before_anything_uses_an_archive(tmp_path: Path) -> None:
    archive_bytes = os.urandom(3000)
    good = manifest(1)
    (tmp_path / good.file).write_bytes(archive_bytes)
    good = Manifest(**{**good.__dict__, "sha256": sha256_of(tmp_path / good.file)})
    assert verify_checksum(tmp_path, good) == tmp_path / good.file
    flipped = bytes([archive_bytes[-1] ^ 0xFF])  # always a change (a fixed byte was 1 in 256)
    (tmp_path / good.file).write_bytes(archive_bytes[:-1] + flipped)
    with pytest.raises(BackupError, match="corrupted or was changed"):
        verify_checksum(tmp_path, good)
    (tmp_path / good.file).unlink()
    with pytest.raises(BackupError, match="is missing"):
        verify_checksum(tmp_path, good)


def test_backup_ids_sort_by_time_and_differ_within_a_second() -> None:
    first, second = new_backup_id(NOW), new_backup_id(NOW)
    assert first[:16] == "20250630T120000Z" and first != second
    assert new_backup_id(NOW - timedelta(seconds=1)) < first


# -- inventories ---------------------------------------------------------------------------------


def test_compare_inventories_names_each_difference() -> None:
    before = (SchemaObject("table", "public.a", "id int"), SchemaObject("view", "public.v", "x"))
    after = (SchemaObject("table", "public.a", "id bigint"), SchemaObject("table", "public.b", ""))
    assert compare_inventories(before, after) == [
        "table public.b exists but should not",
        "view public.v is missing",
        "table public.a differs: 'id bigint', was 'id int'",
    ]
    assert compare_inventories(before, before) == []


def test_compare_inventories_can_leave_pgshifts_own_schema_out() -> None:
    ours = (
        SchemaObject("schema", "pgshift", ""),
        SchemaObject("table", "pgshift.log", "id bigint"),
        SchemaObject("constraint", "log_pkey on pgshift.log", "PRIMARY KEY (id)"),
    )
    app = (SchemaObject("table", "public.a", "id int"),)
    assert compare_inventories(app, app + ours, ignore_quoted_schema="pgshift") == []
    assert len(compare_inventories(app, app + ours)) == 3


def test_newer_than_is_what_the_backup_does_not_know() -> None:
    known = SchemaObject("table", "public.a", "id int")
    changed = SchemaObject("table", "public.a", "id bigint")  # same object, other shape
    added = SchemaObject("table", "public.b", "")
    backup = manifest(1, objects=(known,))
    assert newer_than(backup, (changed, added)) == (added,)
