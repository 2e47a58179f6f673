"""Dataclass methods compiled once and kept beside the bytecode, instead of at every start.

Why: CPython (3.11 and 3.12) writes the source of each dataclass's `__init__`, `__repr__`,
`__eq__`, `__hash__` and frozen setters as text and compiles it with `exec` whenever the class is
created, which is every time a module is imported. pgshift's commands create 20 (a remembered
no-op) to 120 (an `up`) such classes, at ~0.5 ms each on a slow machine, most of it `compile`:
tens of milliseconds of every command's start. Compiling the same text always gives the same
code, so the code is kept in `pgshift/__pycache__/`, one file per module beside that module's
bytecode, keyed by a digest of the text; a text never seen before is compiled as it always was.

Only the classes of pgshift's own modules use it: `exec` is replaced in the `dataclasses`
module's namespace by a function that hands every other caller to the builtin untouched. The
cache is written at exit only when something new was compiled, never when Python is told not to
write bytecode (PYTHONDONTWRITEBYTECODE, -B), atomically, and a file that cannot be read or
written (a read-only install) costs only the speed.
"""

from __future__ import annotations

import builtins
import dataclasses
import hashlib
import marshal
import os
import sys
from pathlib import Path
from types import CodeType
from typing import Any

#: Bumped when the file's layout changes.
_FORMAT = 1
#: More entries than pgshift has methods means old versions' leftovers: start again.
_MOST = 4000
_PREFIX = "pgshift."


class _Cache:
    """The codes read from the file, and whether this process added any."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.codes: dict[bytes, CodeType] | None = None
        self.added = False

    def code(self, source: str) -> CodeType:
        codes = self.codes if self.codes is not None else self._read()
        key = hashlib.sha1(source.encode(), usedforsecurity=False).digest()
        code = codes.get(key)
        if code is None:
            # dont_inherit: compiled as `exec` in dataclasses would, without this module's
            # `from __future__ import annotations` (the methods' annotations stay objects).
            code = codes[key] = compile(source, "<string>", "exec", dont_inherit=True)
            if not self.added:
                self.added = True
                import atexit

                atexit.register(self.write)
        return code

    def _read(self) -> dict[bytes, CodeType]:
        self.codes = {}
        try:
            fmt, magic, codes = marshal.loads(self.path.read_bytes())  # noqa: S302  # as a .pyc
            if fmt == _FORMAT and magic == _magic() and isinstance(codes, dict):
                self.codes = codes
        except (OSError, ValueError, EOFError, TypeError):
            pass
        return self.codes

    def write(self) -> None:
        """Keep what was compiled, unless Python must not write bytecode; never raises."""
        if sys.dont_write_bytecode or self.codes is None or not self.added:
            return
        codes = self.codes if len(self.codes) <= _MOST else {}
        temporary = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(exist_ok=True)
            temporary.write_bytes(marshal.dumps((_FORMAT, _magic(), codes)))
            os.replace(temporary, self.path)
        except OSError:
            temporary.unlink(missing_ok=True)


def _magic() -> bytes:
    """The interpreter's bytecode magic number: a code object is only good for its own."""
    from importlib.util import MAGIC_NUMBER

    return MAGIC_NUMBER


#: Where the files go: beside pgshift's own bytecode.
FOLDER = Path(__file__).parent / "__pycache__"
#: The caches of the modules that made a dataclass in this process, by module name.
_CACHES: dict[str, _Cache] = {}


def _cache(module: str) -> _Cache:
    cache = _CACHES.get(module)
    if cache is None:
        path = FOLDER / f"{module}.dataclasses.{sys.implementation.cache_tag}"
        cache = _CACHES[module] = _Cache(path)
    return cache


def _exec(source: Any, globals: Any = None, locals: Any = None, /) -> None:
    """`exec` for the dataclasses module: pgshift's classes' method sources from the cache."""
    if type(source) is str and type(globals) is dict:
        name = globals.get("__name__")
        if type(name) is str and name.startswith(_PREFIX):
            source = _cache(name).code(source)
    builtins.exec(source, globals, locals)  # noqa: S102  # what dataclasses does itself


def install() -> None:
    """Route the dataclasses module's `exec` through the cache, once. Harmless on a Python
    whose dataclasses no longer calls `exec` by name: nothing would call it."""
    namespace = vars(dataclasses)
    if "exec" not in namespace:
        namespace["exec"] = _exec


def warm() -> int:
    """Import every module of pgshift, so that each one's methods are compiled and kept now;
    return how many modules were imported. What a package or image build runs once, as
    compileall does for bytecode:
    `python -c 'import pgshift.method_cache as m; m.warm()'`."""
    import importlib
    import pkgutil

    count = 0
    for info in pkgutil.walk_packages([str(Path(__file__).parent)], _PREFIX):
        if not info.name.endswith("__main__"):  # that one runs the command line
            importlib.import_module(info.name)
            count += 1
    for cache in list(_CACHES.values()):
        cache.write()
    return count
