"""The migration files' texts are kept with the folder's stat signature and not read again while
it holds (project_files.read_texts), and any change to a file reads it again."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import pgshift.source.folder_stat
import pgshift.source.loader
from pgshift.config import Settings, load_settings
from pgshift.project_files import read_project, texts_path
from pgshift.source.loader import read_migrations
from tests.plugins.project import ProjectMaker, migration_pair

V1, V2 = "20250101000000", "20250102000000"


@pytest.fixture
def settled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every folder counts as settled at once (the real rule waits two seconds)."""
    monkeypatch.setattr(pgshift.source.folder_stat, "SETTLE_NS", -(10**12))


def _settings(root: Path) -> Settings:
    return load_settings({"migrations_dir": str(root / "migrations")}, cwd=root)


def _project(make_project: ProjectMaker) -> Path:
    return make_project(
        {
            **migration_pair(V1, "one", "CREATE TABLE a (id int);\r\nCREATE INDEX ON a (id);\r\n"),
            **migration_pair(V2, "two", "ALTER TABLE a ADD COLUMN x int;"),
        }
    )


def _no_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> object:
        raise AssertionError("a migration file was opened")

    monkeypatch.setattr(pgshift.source.loader, "_read_all", refuse)


def test_a_settled_folder_is_not_read_again_and_loads_the_same(
    make_project: ProjectMaker, monkeypatch: pytest.MonkeyPatch, settled: None
) -> None:
    root = _project(make_project)
    settings = _settings(root)
    first = read_project(settings)
    assert texts_path(settings).is_file()
    direct = read_migrations(root / "migrations")
    _no_reading(monkeypatch)
    again = read_project(settings)
    assert again == first == direct
    (one, _) = again.migrations
    assert "\r\n" in one.text  # the text as the file holds it, not normalised
    assert [s.sql for s in one.statements] == [s.sql for s in first.migrations[0].statements]


def test_an_edit_keeping_size_and_times_is_read_again(
    make_project: ProjectMaker, settled: None
) -> None:
    root = _project(make_project)
    settings = _settings(root)
    read_project(settings)
    path = root / "migrations" / f"{V2}_two.sql"
    before = path.stat()
    path.write_text(path.read_text().replace("x int", "y int"))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # only the change time moves
    assert path.stat().st_size == before.st_size
    after = read_project(settings)
    assert "y int" in after.migrations[1].text
    assert after == read_migrations(root / "migrations")


def test_an_unsettled_folder_is_neither_kept_nor_trusted(
    make_project: ProjectMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files written just now (the real two seconds apply) could change again unseen."""
    root = _project(make_project)
    settings = _settings(root)
    read_project(settings)
    assert not texts_path(settings).exists()


def test_kept_texts_of_another_signature_or_damaged_are_not_used(
    make_project: ProjectMaker, settled: None
) -> None:
    root = _project(make_project)
    settings = _settings(root)
    read_project(settings)
    (root / "migrations" / f"{V2}_two.sql").unlink()
    (root / "migrations" / f"{V2}_two_rollback.sql").unlink()
    assert [m.version for m in read_project(settings).migrations] == [V1]
    texts_path(settings).write_text("[not json", encoding="utf-8")
    assert [m.version for m in read_project(settings).migrations] == [V1]


def test_a_signature_the_caller_took_is_not_taken_again(
    make_project: ProjectMaker, monkeypatch: pytest.MonkeyPatch, settled: None
) -> None:
    """A remembered answer took the folder's signature before reading: the read uses it."""
    root = _project(make_project)
    settings = _settings(root)
    read_project(settings)
    taken = pgshift.source.folder_stat.folder_stat(root / "migrations")
    assert taken is not None

    def refuse(*args: object, **kwargs: object) -> object:
        raise AssertionError("the folder's signature was taken again")

    monkeypatch.setattr(pgshift.source.folder_stat, "folder_stat", refuse)
    _no_reading(monkeypatch)
    assert [m.version for m in read_project(settings, folder=taken).migrations] == [V1, V2]
