"""The project's migration files as read for a command, with the parse memo kept on disk.

It sits beside the runner, above the pure reader: it decides where the memo lives (the
project's `.pgshift/cache/`) and writes it, which the pure layer below never does.
"""

from __future__ import annotations

import contextlib
import gc
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, TypeVar

from pgshift.config import Settings
from pgshift.errors import Problem

T = TypeVar("T")

if TYPE_CHECKING:  # the loader is imported by the commands that read files, not by all
    from collections.abc import Callable, Iterable, Sequence

    from pgshift.concurrency import Pending
    from pgshift.lint.memo import LintMemo
    from pgshift.model import Migration
    from pgshift.source.folder_stat import FolderStat
    from pgshift.source.loader import LoadResult, ParseListener


def cache_path(settings: Settings) -> Path:
    return settings.project.root / ".pgshift" / "cache" / "statements.json"


def folder_cache_path(settings: Settings) -> Path:
    """The folder memo: the whole folder as last read, all a command over it unchanged loads."""
    return settings.project.root / ".pgshift" / "cache" / "folder.json"


class FolderMemory:
    """What every remembered answer (ops/uptodate.py, ops/status_memory.py) is keyed by besides
    the history: the folder's signature and pgshift's code. Taken when this is made, so make it
    *before* the files are read."""

    def __init__(self, settings: Settings) -> None:
        from pgshift.source.folder_stat import folder_stat
        from pgshift.source.stamps import code_stamp

        self.settings = settings
        self.folder: FolderStat | None = folder_stat(settings.project.migrations_dir)
        self._code = code_stamp()


def texts_path(settings: Settings) -> Path:
    """The migration files' texts as last read, with the folder's stat signature then."""
    return settings.project.root / ".pgshift" / "cache" / "texts.json"


def read_texts(settings: Settings, stat: FolderStat) -> dict[str, tuple[str, str]] | None:
    """{file name: (text, checksum)} as read when the folder had exactly ``stat``'s signature;
    None when they were kept for another signature, or the file is absent or damaged.

    The signature holds every file's name, inode, size, modification and change time
    (source/folder_stat.py): a file's text cannot change without its change time moving, so
    the same signature means the same texts, and the files need not be opened again (two
    thousand files cost ~40 ms of system calls on a slow machine). Only a settled signature is
    ever kept, as for the remembered answers (ops/uptodate.py).
    """
    import json

    try:
        digest, rows = json.loads(texts_path(settings).read_bytes())
        if digest != stat.digest:
            return None
        return {str(name): (str(text), str(checksum)) for name, text, checksum in rows}
    except (OSError, ValueError, TypeError):
        return None


def write_texts(settings: Settings, stat: FolderStat, texts: dict[str, tuple[str, str]]) -> None:
    import json

    rows = [[name, text, checksum] for name, (text, checksum) in texts.items()]
    _write_private(texts_path(settings), json.dumps([stat.digest, rows]).encode())


def lint_cache_path(settings: Settings) -> Path:
    """The findings memo (lint/memo.py): what the rules found in each migration last time."""
    return settings.project.root / ".pgshift" / "cache" / "lint.json"


def read_lint_memo(settings: Settings) -> LintMemo:
    from pgshift.lint.memo import LintMemo

    try:
        return LintMemo.from_bytes(lint_cache_path(settings).read_bytes())
    except OSError:
        return LintMemo()


def write_lint_memo(settings: Settings, memo: LintMemo) -> None:
    if memo.changed:
        _write_private(lint_cache_path(settings), memo.to_bytes())


def verdicts_path(settings: Settings) -> Path:
    """The remembered answers of commands with nothing to do (ops/uptodate.py)."""
    return settings.project.root / ".pgshift" / "cache" / "verdicts.json"


def read_verdicts(settings: Settings) -> dict[str, str]:
    """The answers ops/uptodate.py remembered (key: note), newest first; none when the file
    is absent or damaged."""
    import json

    try:
        kept = json.loads(verdicts_path(settings).read_bytes())["verdicts"]
        return {str(key): str(note) for key, note in kept}
    except (OSError, ValueError, TypeError, KeyError):
        return {}


def write_verdicts(settings: Settings, kept: dict[str, str]) -> None:
    import json

    document = {"verdicts": [[key, note] for key, note in kept.items()]}
    _write_private(verdicts_path(settings), json.dumps(document).encode())


def status_memory_path(settings: Settings) -> Path:
    """The remembered `status` documents (ops/status_memory.py): apart from the verdicts, which
    every no-op `up` reads and which must stay small."""
    return settings.project.root / ".pgshift" / "cache" / "status.json"


class KeptStatus(NamedTuple):
    """One remembered status: for which database, under which key, the history's shape its
    stamp reads, and the document as JSON text (decoded only for the entry that is used)."""

    database: str
    key: str
    shape: str
    document: bytes


def read_status_memory(settings: Settings) -> list[KeptStatus]:
    """The kept statuses, newest first; none when the file is absent or damaged.

    The file is a line of JSON naming every entry, then one line per entry's document, so that
    a command decodes only the document it uses (json.dumps never writes a raw newline).
    """
    import json

    try:
        lines = status_memory_path(settings).read_bytes().split(b"\n")
        index = json.loads(lines[0])
        return [
            KeptStatus(str(database), str(key), str(shape), lines[i + 1])
            for i, (database, key, shape) in enumerate(index)
        ]
    except (OSError, ValueError, TypeError, IndexError):
        return []


def write_status_memory(settings: Settings, kept: Sequence[KeptStatus]) -> None:
    import json

    index = json.dumps([[k.database, k.key, k.shape] for k in kept]).encode()
    _write_private(status_memory_path(settings), b"\n".join([index, *(k.document for k in kept)]))


def beside(work: Callable[[], T]) -> Pending[T] | None:
    """The Helper commands hand the loader and the linter: pgshift/beside.py, imported (with
    pickle and threading) only when a large project gives it work."""
    from pgshift.beside import when_needed

    return when_needed(work)


def read_project(
    settings: Settings,
    *,
    listener: ParseListener | None = None,
    folder: FolderStat | None = None,
) -> LoadResult:
    """Every file of the project read, problems and warnings included, never raising for them.

    Statements of files read before come from `.pgshift/cache/` instead of the parser; the
    per-file memo is read only when the folder memo does not match the files as read now.
    ``listener`` (lint/ahead.py) is handed each file with its parse trees on a cold read.
    ``folder``: the folder's stat signature, when the caller took it before reading.
    """
    from pgshift.source.folder_stat import folder_stat
    from pgshift.source.loader import read_migrations
    from pgshift.source.statement_cache import StatementCache

    directory = settings.project.migrations_dir
    # Before the files are read (read_texts): the caller's (a remembered answer's), or now.
    stat = folder if folder is not None else folder_stat(directory)
    settled = stat is not None and stat.settled
    known = read_texts(settings, stat) if stat is not None and settled else None
    texts: dict[str, tuple[str, str]] | None = {} if settled and known is None else None
    path, folder_path = cache_path(settings), folder_cache_path(settings)
    try:
        memo: bytes | None = folder_path.read_bytes()
    except OSError:
        memo = None
    # Reading builds tens of thousands of small objects, none of them in a cycle; the cyclic
    # collector would walk the growing heap many times over while they are made (a fifth of
    # the read in a fresh process). It runs again as soon as the read is done, and the new
    # objects go straight to the oldest generation (freeze, then unfreeze): left in the
    # youngest, the next few collections would each walk all of them (0.8 s at 10,000 files).
    paused = gc.isenabled()
    gc.disable()
    try:
        cache = StatementCache.deferred(path.read_bytes, memo)
        result = read_migrations(directory, cache, beside, listener, known=known, texts=texts)
    finally:
        gc.freeze()
        gc.unfreeze()
        if paused:
            gc.enable()
    if cache.folder_changed:  # it holds every file's entry: the per-file document is spare
        _write_private(folder_path, cache.folder_chunks())
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
    elif cache.changed:
        _write_private(path, cache.to_bytes())
    if stat is not None and texts:
        write_texts(settings, stat, texts)
    return result


@dataclass(frozen=True)
class Project:
    """A project as read for a command: its settings and every migration in plan order.

    Loaded once and planned against any number of targets (a fleet plans per target).
    ``problems`` are the problems of migrations' own files: `up` refuses those of migrations
    not applied yet and warns about the others; a rollback must still get back to a good
    state past a broken new file (only the problems in the files it runs count against it).
    """

    settings: Settings
    migrations: tuple[Migration, ...]
    problems: tuple[Problem, ...] = ()
    warnings: tuple[Problem, ...] = ()  # what the loader only warns about (no rollback file)

    @property
    def versions(self) -> tuple[str, ...]:
        return tuple(m.version for m in self.migrations)


def owned_problems(read: LoadResult) -> tuple[tuple[Problem, ...], tuple[Problem, ...]]:
    """(problems in a migration's own files, the others): which ones block depends on the
    database for the first kind only (plan.gate_files)."""
    files: set[str] = set()
    for m in read.migrations:
        files.add(str(m.path))
        files.add(str(m.path.with_name(f"{m.path.stem}_rollback.sql")))
    owned = tuple(p for p in read.problems if p.file in files)
    return owned, tuple(p for p in read.problems if p.file not in files)


def load_migrations(settings: Settings) -> tuple[Migration, ...]:
    """Every migration of the project in plan order; any file problem raises InputError."""
    from pgshift.errors import InputError

    result = read_project(settings)
    if result.problems:
        raise InputError(result.problems)
    return result.migrations


def _write_private(path: Path, data: bytes | Iterable[str]) -> None:
    """Replace ``path`` atomically; a cache that cannot be written is only a slower next run.

    Text comes in pieces, each written as UTF-8 as it comes: a large project's folder memo is
    tens of MiB, and a whole copy of it would be the command's peak of memory.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        ignore = path.parent.parent / ".gitignore"
        if not ignore.exists():
            ignore.write_text("*\n")
        # tempfile.mkstemp, without importing tempfile (and random) at every cold start.
        tmp = str(path.parent / f".{path.stem}-{os.urandom(6).hex()}")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        fd = os.open(tmp, flags, 0o600)
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as fh:
            if isinstance(data, bytes):
                fh.write(data)
            else:
                for piece in data:
                    fh.write(piece.encode("utf-8", "surrogatepass"))
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
