"""Every finding code pgshift can print is a registered rule, with a page and a category.

Why a scan of the source: findings are built in several places besides the rule engine
(drift, the round trip, `up`'s own warnings, `--trace`), and a code built there but never
registered printed a link to a page that does not exist. The scan reads every call that
builds a finding (``Finding(...)``, ``finding_for(...)`` and the modules' ``_finding``
wrappers) and resolves its code: a string, or a module constant naming one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from pgshift.lint.finding import CATEGORIES, Finding
from pgshift.lint.registry import finding_for, load_rules, rule

SRC = Path(__file__).resolve().parents[2] / "src" / "pgshift"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "rules"
_BUILDERS = {"Finding", "finding_for", "_finding"}
#: Codes built outside the engine that the scan must find, so that it cannot pass by finding
#: nothing (a renamed builder would otherwise make this test vacuous).
_KNOWN_OUTSIDE_THE_ENGINE = {
    "applied-file-problem",
    "apply-failed",
    "checksum-drift",
    "invalid-file",
    "irreversible",
    "missing-file",
    "reapply-mismatch",
    "rollback-failed",
    "rollback-incomplete",
    "trace-disagrees",
    "unused-ignore",
}


def _constants() -> dict[str, str]:
    """Module-level ``NAME = "a-code"`` assignments anywhere in the package."""
    found: dict[str, str] = {}
    for path in SRC.rglob("*.py"):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
            ):
                found[node.targets[0].id] = node.value.value
    return found


def _code_argument(call: ast.Call) -> ast.expr | None:
    for keyword in call.keywords:
        if keyword.arg == "code":
            return keyword.value
    return call.args[0] if call.args else None


def _constructed_codes() -> dict[str, list[str]]:
    """Code -> where it is built (file:line), for every builder call whose code is known."""
    constants = _constants()
    codes: dict[str, list[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name not in _BUILDERS:
                continue
            arg = _code_argument(node)
            code: str | None = None
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                code = arg.value
            elif isinstance(arg, ast.Name) and arg.id in constants:
                code = constants[arg.id]
            if code is not None:
                where = f"{path.relative_to(SRC)}:{node.lineno}"
                codes.setdefault(code, []).append(where)
    return codes


def test_every_code_built_anywhere_is_a_registered_rule_with_a_page() -> None:
    codes = _constructed_codes()
    assert set(codes) >= _KNOWN_OUTSIDE_THE_ENGINE, sorted(_KNOWN_OUTSIDE_THE_ENGINE - set(codes))
    rules = load_rules()
    unregistered = {code: where for code, where in codes.items() if code not in rules}
    assert unregistered == {}
    without_page = sorted(code for code in codes if not (DOCS / f"{code}.md").is_file())
    assert without_page == []


#: The only places that call ``Finding(...)`` itself: the registry's finding_for, the engine
#: (a statement rule's hit, with the rule in hand) and the memo (decoding what it stored).
_FINDING_MAKERS = {"lint/registry.py", "lint/engine.py", "lint/memo.py"}


def test_every_other_finding_is_built_by_its_registered_rule() -> None:
    """Severity, category and help come from the rule, never typed again where a finding is
    made: a hand-built one drifted from its rule's page (unused-ignore's help did)."""
    by_hand: list[str] = []
    for path in sorted(SRC.rglob("*.py")):
        relative = path.relative_to(SRC).as_posix()
        if relative in _FINDING_MAKERS:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            if isinstance(node.func, ast.Name) and node.func.id == "Finding":
                by_hand.append(f"{relative}:{node.lineno}")
    assert by_hand == []


def test_every_rule_code_has_a_page_and_every_page_a_rule() -> None:
    codes = set(load_rules())
    pages = {p.stem for p in DOCS.glob("*.md")}
    assert codes == pages


def test_one_rule_is_found_without_loading_every_rule() -> None:
    """A database-side finding imports only its rule's module (no parser, no other rule)."""
    import subprocess
    import sys

    script = (
        "import sys; from pgshift.lint.registry import rule, RULES; "
        "r = rule('checksum-drift'); "
        "print(r.severity, r.category, len(RULES), 'pglast' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["error", "file", "1", "False"]


def test_finding_for_takes_severity_category_and_help_from_the_rule() -> None:
    found = finding_for("irreversible", "m.sql", 3, 1, "marked irreversible")
    registered = rule("irreversible")
    assert (found.severity, found.category, found.help) == (
        registered.severity,
        registered.category,
        registered.help,
    )
    told = finding_for("apply-failed", "m.sql", 1, 1, "boom", help="fix it")
    assert (told.help, told.severity, told.category) == ("fix it", "error", "failure")


def test_a_finding_built_without_a_category_gets_its_rules() -> None:
    plain = Finding("drop-trigger", "note", "m.sql", 1, 1, "dropping trigger t", "")
    assert plain.category == "semantics"
    assert all(r.category in CATEGORIES for r in load_rules().values())


def test_a_finding_of_no_rule_is_a_bug_not_a_dead_link() -> None:
    with pytest.raises(KeyError):
        Finding("no-such-rule", "error", "m.sql", 1, 1, "?", "")
