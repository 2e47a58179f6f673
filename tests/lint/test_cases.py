"""Every lint rule against its cases: ``ok_*`` must find nothing, ``bad_*`` must render as saved.

Each ``bad_*`` case has a ``.expected`` file beside it holding the rendered findings (message,
position, caret and help, reviewed together, as squawk's snapshot tests do).  A case is a
single ``.sql`` file linted on its own, or a folder linted as a whole migrations project.
A first line ``-- pg-version: N`` sets the target PostgreSQL version; a file whose name
contains ``rollback`` is linted as a rollback file.
Set PGSHIFT_UPDATE_CASES=1 to rewrite the expected files (then review the diff).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

import pgshift
from pgshift.config import load_settings
from pgshift.lint import LATEST_MAJOR
from pgshift.lint.engine import lint_text
from pgshift.lint.finding import CATEGORIES, Finding, render_text
from pgshift.lint.registry import load_rules

CASES = Path(__file__).parent / "cases"
DOCS = Path(__file__).parents[2] / "docs" / "rules"
_VERSION = re.compile(r"--\s*pg-version:\s*(\d+)")
#: Rules that only a database can trigger; tests/cli and tests/integration cover them.
DATABASE_SCOPE = "database"


def _cases() -> list[Path]:
    return sorted(
        p
        for folder in CASES.iterdir()
        for p in folder.iterdir()
        if p.name.startswith(("ok_", "bad_")) and (p.is_dir() or p.suffix == ".sql")
    )


def _lint(case: Path) -> tuple[list[Finding], dict[str, str]]:
    """Findings with paths relative to the case, and the texts to render them with."""
    if case.is_dir():
        settings = load_settings({"migrations_dir": str(case)}, env={}, cwd=case)
        report = pgshift.validate(settings)
        texts = {p.name: p.read_text() for p in case.glob("*.sql")}
        found = [_relative(f, case) for f in report.findings]
        return found, texts
    text = case.read_text()
    match = _VERSION.match(text)
    major = int(match.group(1)) if match else LATEST_MAJOR
    found = lint_text(text, case.name, rollback="rollback" in case.name, pg_major=major)
    return found, {case.name: text}


def _relative(finding: Finding, base: Path) -> Finding:
    from dataclasses import replace

    return replace(finding, file=os.path.relpath(finding.file, base))


def _render(findings: list[Finding], texts: dict[str, str]) -> str:
    return "".join(render_text(f, texts.get(f.file)) + "\n\n" for f in findings)


@pytest.mark.parametrize("case", _cases(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_case(case: Path) -> None:
    findings, texts = _lint(case)
    code = case.parent.name
    if case.name.startswith("ok_"):
        assert findings == [], _render(findings, texts)
        return
    assert code in {f.code for f in findings}, _render(findings, texts)
    expected_file = case.with_suffix(".expected") if case.is_file() else Path(f"{case}.expected")
    rendered = _render(findings, texts)
    if os.environ.get("PGSHIFT_UPDATE_CASES"):
        expected_file.write_text(rendered)
    assert expected_file.is_file(), f"{expected_file} is missing (PGSHIFT_UPDATE_CASES=1)"
    assert rendered == expected_file.read_text()


def test_every_rule_has_docs_and_cases() -> None:
    """A rule is not done until it is documented and shown safe and unsafe."""
    missing: list[str] = []
    for code, rule in sorted(load_rules().items()):
        if not (DOCS / f"{code}.md").is_file():
            missing.append(f"docs/rules/{code}.md")
        if rule.scope == DATABASE_SCOPE:
            continue
        names = [p.name for p in (CASES / code).glob("*")] if (CASES / code).is_dir() else []
        if not any(n.startswith("ok_") for n in names):
            missing.append(f"tests/lint/cases/{code}/ok_*")
        if not any(n.startswith("bad_") and not n.endswith(".expected") for n in names):
            missing.append(f"tests/lint/cases/{code}/bad_*")
    assert missing == []


def test_no_case_folder_without_a_rule() -> None:
    assert {p.name for p in CASES.iterdir() if p.is_dir()} <= set(load_rules())


def test_codes_are_kebab_case_and_severities_known() -> None:
    for code, rule in load_rules().items():
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", code)
        assert rule.severity in ("error", "warning", "note")
        assert rule.summary and rule.help


def test_every_rule_declares_a_category() -> None:
    """SPEC section 2's categories, declared on the rule class itself (never inherited)."""
    missing = [
        code
        for code, rule in sorted(load_rules().items())
        if "category" not in vars(type(rule)) or rule.category not in CATEGORIES
    ]
    assert missing == []


def test_every_page_states_the_rules_severity_and_category() -> None:
    """The page's first facts line is the registry's, so the docs never disagree with output."""
    wrong: list[str] = []
    for code, rule in sorted(load_rules().items()):
        page = DOCS / f"{code}.md"
        if not page.is_file():
            continue  # test_every_rule_has_docs_and_cases names it
        facts = f"severity: **{rule.severity}** · category: **{rule.category}**"
        if facts not in page.read_text():
            wrong.append(f"{code}: expected {facts!r}")
    assert wrong == []


def test_severity_follows_what_happens_to_production() -> None:
    """SPEC section 4: notes are changes of behaviour (semantics) only, and an error is never
    a matter of style or of a file's metadata being incomplete."""
    for code, rule in load_rules().items():
        if rule.severity == "note":
            assert rule.category == "semantics", code
        if rule.category == "style":
            assert rule.severity != "error", code
        if (rule.blocks or rule.rewrites) and not rule.destructive:
            assert rule.category in ("locking", "rewrite"), code
        if rule.blocks or rule.rewrites or rule.destructive:
            assert rule.severity != "note", code
