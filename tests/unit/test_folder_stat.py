"""The folder signature a command with nothing to do trusts instead of reading every file."""

from __future__ import annotations

import os
import time
from pathlib import Path

from pgshift.source.folder_stat import SETTLE_NS, folder_stat, migration_file_names
from pgshift.source.stamps import code_stamp


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "20250101000000_one.sql").write_text("CREATE TABLE one (id int);\n")
    (folder / "20250101000000_one_rollback.sql").write_text("DROP TABLE one;\n")
    return folder


def _later() -> int:
    """A clock far enough ahead that every file written now counts as settled."""
    return time.time_ns() + 2 * SETTLE_NS


def test_the_same_files_give_the_same_signature(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    first, second = folder_stat(folder, clock_ns=_later), folder_stat(folder, clock_ns=_later)
    assert first is not None and second is not None
    assert first == second and first.files == 2 and first.settled


def test_an_edit_that_keeps_size_and_modification_time_still_changes_it(tmp_path: Path) -> None:
    """The change time moves with every write and no user call sets it back."""
    folder = _folder(tmp_path)
    path = folder / "20250101000000_one.sql"
    before = folder_stat(folder)
    info = path.stat()
    time.sleep(0.02)
    path.write_text("CREATE TABLE two (id int);\n")  # same length
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))  # the old modification time
    assert path.stat().st_size == info.st_size and path.stat().st_mtime_ns == info.st_mtime_ns
    after = folder_stat(folder)
    assert before is not None and after is not None and before.digest != after.digest


def test_a_file_replaced_added_or_removed_changes_it(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    seen = {folder_stat(folder).digest}  # type: ignore[union-attr]
    path = folder / "20250101000000_one.sql"
    replacement = folder / ".tmp-editor"
    replacement.write_text(path.read_text())
    os.replace(replacement, path)  # an editor's save: same text, a new inode
    seen.add(folder_stat(folder).digest)  # type: ignore[union-attr]
    (folder / "20250102000000_two.sql").write_text("SELECT 1;\n")
    seen.add(folder_stat(folder).digest)  # type: ignore[union-attr]
    (folder / "20250102000000_two.sql").unlink()
    (folder / "notes.txt").write_text("not a migration")  # not read by the loader: no change
    seen.add(folder_stat(folder).digest)  # type: ignore[union-attr]
    assert len(seen) == 3


def test_a_folder_written_just_now_is_not_settled(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    now = folder_stat(folder)
    assert now is not None and not now.settled
    later = folder_stat(folder, clock_ns=_later)
    assert later is not None and later.settled and later.digest == now.digest


def test_the_names_are_those_the_loader_reads(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    (folder / ".hidden.sql").write_text("SELECT 1;\n")
    (folder / "sub.sql").mkdir()
    assert migration_file_names(folder) == [
        "20250101000000_one.sql",
        "20250101000000_one_rollback.sql",
    ]
    assert folder_stat(tmp_path / "absent") is None


def test_the_code_stamp_moves_with_any_module(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    module = package / "sub" / "mod.py"
    module.write_text("X = 1\n")
    first = code_stamp(str(package))
    assert code_stamp(str(package)) == first
    module.write_text("X = 22\n")
    assert code_stamp(str(package)) != first
    assert code_stamp() != code_stamp(str(package))  # pgshift's own by default
