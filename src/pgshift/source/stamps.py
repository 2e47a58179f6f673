"""What identifies the code that made a remembered result: the installed parser and
pgshift's own modules, each known by its files' sizes and times, without importing them.

The statements memo (statement_cache.py) and the remembered answers of commands with nothing
to do (ops/uptodate.py) must never be trusted by other code than the one that wrote them.
"""

from __future__ import annotations

import hashlib
import os


def parser_version() -> str:
    """Which installed parser made a result, without importing it (that costs 30 ms).

    The installed package's location, size and time change with every install, which is all
    a result needs to know to be trusted.
    """
    import importlib.util

    spec = importlib.util.find_spec("pglast")
    if spec is None or spec.origin is None:
        return "none"
    info = os.stat(spec.origin)
    return f"{spec.origin}:{info.st_size}:{info.st_mtime_ns}"


def code_stamp(package: str | None = None) -> str:
    """Every module of pgshift (or of ``package``, a folder) and the parser as installed: a
    new or edited pgshift may decide differently, so its answers are its own. Each file's
    size and time change with every install or edit; stat-ing them all costs a millisecond."""
    if package is None:
        package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    digest = hashlib.sha256(parser_version().encode())
    folders = [package]
    while folders:
        folder = folders.pop()
        with os.scandir(folder) as entries:
            found = sorted(entries, key=lambda e: e.name)
        for entry in found:
            if entry.name.endswith(".py"):
                info = entry.stat()
                digest.update(f"{entry.path}:{info.st_size}:{info.st_mtime_ns}\0".encode())
            elif entry.is_dir(follow_symlinks=False) and entry.name != "__pycache__":
                folders.append(entry.path)
    return digest.hexdigest()
