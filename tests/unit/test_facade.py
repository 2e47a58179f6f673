"""The facade (pgshift/__init__.py) is a table of re-exports kept in agreement with itself.

`__all__`, the lazy tables (_FUNCTIONS, _TYPES) and the TYPE_CHECKING imports that type them are
three lists of the same names: these tests fail as soon as one drifts from another, and as soon as
a public name is defined in more than one module (a second definition is a second meaning).
"""

from __future__ import annotations

import ast
import importlib
from collections import defaultdict
from pathlib import Path

import pgshift

PACKAGE = Path(pgshift.__file__).resolve().parent
FACADE = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))


def _lazy_table() -> dict[str, str]:
    table: dict[str, str] = {}
    for node in FACADE.body:
        target = node.targets[0] if isinstance(node, ast.Assign) else None
        if isinstance(target, ast.Name) and target.id in ("_FUNCTIONS", "_TYPES"):
            assert isinstance(node, ast.Assign)
            part = ast.literal_eval(node.value)
            assert not set(part) & set(table), "a name in both lazy tables"
            table.update(part)
    return table


def _imports(body: list[ast.stmt]) -> dict[str, str]:
    """name -> module of the ``from module import name`` statements directly in ``body``."""
    found: dict[str, str] = {}
    for node in body:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                assert alias.asname is None, f"{alias.name} is renamed on import"
                assert alias.name not in found, f"{alias.name} imported twice"
                found[alias.name] = node.module
    return found


def _type_checking_imports() -> dict[str, str]:
    for node in FACADE.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            return _imports(node.body)
    raise AssertionError("pgshift/__init__.py has no `if TYPE_CHECKING:` block")


def _eager_imports() -> dict[str, str]:
    """The names the facade imports at once (outside TYPE_CHECKING), pgshift's own only."""
    eager = _imports([n for n in FACADE.body if isinstance(n, ast.ImportFrom)])
    return {name: module for name, module in eager.items() if module.startswith("pgshift.")}


def test_every_public_name_resolves() -> None:
    assert len(pgshift.__all__) == len(set(pgshift.__all__)), "a name listed twice in __all__"
    for name in pgshift.__all__:
        assert getattr(pgshift, name) is not None, name
    assert set(pgshift.__all__) <= set(dir(pgshift))


def test_the_lazy_table_and_all_agree_exactly() -> None:
    lazy = _lazy_table()
    eager = _eager_imports()
    assert not set(lazy) & set(eager), "a name both imported at once and lazily"
    assert sorted(set(lazy) | set(eager)) == sorted(pgshift.__all__)


def test_the_type_checking_imports_agree_with_the_lazy_table() -> None:
    """mypy sees the TYPE_CHECKING imports; users get the lazy table: the same name must be the
    same object from the same module in both."""
    assert _type_checking_imports() == _lazy_table()


def test_each_name_is_re_exported_from_the_module_that_defines_it() -> None:
    """No re-export chains: the table names the defining module, not one that imports it."""
    chained: list[str] = []
    for name, module in _lazy_table().items():
        tree = ast.parse(Path(str(importlib.import_module(module).__file__)).read_text("utf-8"))
        if name not in _top_level_definitions(tree):
            chained.append(f"{name}: {module} does not define it")
    assert chained == []


def test_every_public_name_is_defined_once() -> None:
    """A public name (a facade function or type) is defined in one module of pgshift, so that
    `pgshift.health` and `ops.health.health` can never mean two different things."""
    where: defaultdict[str, list[str]] = defaultdict(list)
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for name in _top_level_definitions(tree):
            where[name].append(str(path.relative_to(PACKAGE)))
    twice = {name: where[name] for name in pgshift.__all__ if len(where[name]) > 1}
    assert twice == {}
    assert all(where[name] for name in pgshift.__all__)


def _top_level_definitions(tree: ast.Module) -> set[str]:
    """Functions, classes and assigned names (type aliases) at the top of a module."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names
