"""Dataclass methods kept between runs (pgshift/method_cache.py) make the very same classes.

Classes are defined here in a namespace named like a pgshift module, as an import would define
them, so the cache takes them; ``FOLDER`` points at a temporary folder.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pgshift import method_cache

SOURCE = textwrap.dedent(
    """
    import dataclasses

    @dataclasses.dataclass(frozen=True, slots=True)
    class Point:
        x: int
        y: int = 2
        tags: tuple[str, ...] = dataclasses.field(default_factory=tuple)
    """
)


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setattr(method_cache, "FOLDER", tmp_path)
    monkeypatch.setattr(method_cache, "_CACHES", {})
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    yield tmp_path


def _point(module: str) -> type[Any]:
    fake = type(sys)(module)
    sys.modules[module] = fake
    try:
        code = compile(SOURCE, f"<{module}>", "exec", dont_inherit=True)  # as a module of its own
        exec(code, fake.__dict__)  # noqa: S102
    finally:
        del sys.modules[module]
    cls: type[Any] = fake.__dict__["Point"]
    return cls


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_the_cache_is_installed_in_the_dataclasses_module() -> None:
    assert vars(dataclasses)["exec"] is method_cache._exec


def test_a_class_made_from_kept_code_is_the_same_class(folder: Path) -> None:
    first = _point("pgshift.probe_one")
    for cache in list(method_cache._CACHES.values()):
        cache.write()
    assert _files(folder) == [f"pgshift.probe_one.dataclasses.{sys.implementation.cache_tag}"]
    method_cache._CACHES.clear()  # a new process: only the file is left
    again = _point("pgshift.probe_one")
    assert not method_cache._CACHES["pgshift.probe_one"].added  # nothing compiled this time
    for cls in (first, again):
        p = cls(1)
        assert (p.x, p.y, p.tags) == (1, 2, ())
        assert repr(p) == "Point(x=1, y=2, tags=())"
        assert p == cls(1, 2) and hash(p) == hash(cls(1, 2)) and p != cls(3)
        with pytest.raises(dataclasses.FrozenInstanceError):
            p.x = 5
        # Annotations stay objects: the kept code was compiled without this file's
        # `from __future__ import annotations`, as dataclasses' own exec compiles it.
        assert cls.__init__.__annotations__["x"] is int
        assert cls.__init__.__qualname__ == "Point.__init__"


def test_classes_of_other_modules_are_left_to_the_builtin(folder: Path) -> None:
    cls = _point("someone_else")
    assert cls(1).y == 2
    assert method_cache._CACHES == {}
    assert _files(folder) == []


def test_a_damaged_file_is_compiled_again_and_replaced(folder: Path) -> None:
    path = folder / f"pgshift.probe_two.dataclasses.{sys.implementation.cache_tag}"
    path.write_bytes(b"not marshal data")
    assert _point("pgshift.probe_two")(4).x == 4
    method_cache._CACHES["pgshift.probe_two"].write()
    method_cache._CACHES.clear()
    assert _point("pgshift.probe_two")(4).x == 4
    assert not method_cache._CACHES["pgshift.probe_two"].added


def test_nothing_is_written_when_python_must_not_write_bytecode(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    assert _point("pgshift.probe_three")(1).y == 2
    method_cache._CACHES["pgshift.probe_three"].write()
    assert _files(folder) == []


def test_a_folder_that_cannot_be_written_costs_only_the_speed(folder: Path) -> None:
    folder.chmod(0o500)
    try:
        assert _point("pgshift.probe_four")(1).y == 2
        method_cache._CACHES["pgshift.probe_four"].write()  # must not raise
    finally:
        folder.chmod(0o700)
    if os.geteuid() != 0:  # root writes anyway
        assert _files(folder) == []


def test_a_second_process_compiles_no_method_of_the_modules_the_first_kept(
    tmp_path: Path,
) -> None:
    """Two real interpreters with bytecode writing allowed: the second finds every method of
    pgshift's events module in the file the first wrote."""
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from pgshift import method_cache
        method_cache.FOLDER = Path({str(tmp_path)!r})
        assert 'pgshift.events' not in sys.modules
        import pgshift.events
        cache = method_cache._CACHES["pgshift.events"]
        print(int(cache.added), len(cache.codes or {{}}))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    runs = [
        subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        ).stdout.split()
        for _ in range(2)
    ]
    first_added, first_count = runs[0]
    second_added, second_count = runs[1]
    assert first_added == "1" and int(first_count) > 10
    assert second_added == "0" and second_count == first_count
