"""The stat signature of a migrations folder: what a command with nothing to do trusts
instead of opening every file.

Why it exists: opening and reading 2,000 small files costs a no-op `up` more than connecting
and asking the server (bench/RESULTS.md), while asking the file system for their sizes and
times costs a seventh of it. A file's text cannot change without its change time (ctime)
moving, and no user call sets a ctime back; an editor that writes a new file and renames it
over the old one changes the inode too. So a folder whose files have the same names, devices,
inodes, sizes, modification and change times as when it was read holds the same texts.

One case escapes that: a file written twice within one tick of the file system's clock, once
before it was read and once after, keeps its times. So a signature is *settled* only when every
change time is older than SETTLE_NS before it was taken, and only a settled signature may be
remembered (git calls the other files "racily clean" and reads them again too).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

#: How much older than the moment of the signature every change time must be for it to be
#: remembered: far above any file system's timestamp tick.
SETTLE_NS = 2_000_000_000


@dataclass(frozen=True)
class FolderStat:
    """A folder's signature (``digest``), and whether it may be remembered (``settled``)."""

    digest: str
    settled: bool
    files: int


def migration_file_names(directory: Path) -> list[str]:
    """The names the loader reads: ``*.sql`` files, hidden ones left out, sorted."""
    with os.scandir(directory) as entries:  # one directory read, no stat per file
        return sorted(
            entry.name
            for entry in entries
            if entry.name.endswith(".sql") and not entry.name.startswith(".") and entry.is_file()
        )


def folder_stat(
    directory: Path, *, clock_ns: Callable[[], int] = time.time_ns
) -> FolderStat | None:
    """The signature of the migration files of ``directory``; None when it cannot be read.

    Take it *before* reading the files: a file changed between the two then has a newer
    change time than the signature says, and the signature is never seen again.
    """
    now = clock_ns()
    try:
        names = migration_file_names(directory)
        folder = os.open(directory, os.O_RDONLY) if os.stat in os.supports_dir_fd else None
    except OSError:
        return None
    digest = hashlib.sha256(os.fsencode(os.path.abspath(directory)))
    newest = 0
    try:
        for name in names:
            # Relative to the folder's descriptor: the kernel walks no path per file. It
            # follows a symlink, as reading the file does.
            info = os.stat(directory / name) if folder is None else os.stat(name, dir_fd=folder)
            newest = max(newest, info.st_ctime_ns)
            digest.update(
                f"\0{name}\0{info.st_dev}:{info.st_ino}:{info.st_size}:"
                f"{info.st_mtime_ns}:{info.st_ctime_ns}".encode("utf-8", "surrogateescape")
            )
    except OSError:
        return None
    finally:
        if folder is not None:
            os.close(folder)
    return FolderStat(digest.hexdigest(), newest < now - SETTLE_NS, len(names))
