"""`pgshift explain RULE` and `pgshift.explain`: a rule's page, the one shipped in the package."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib import resources
from pathlib import Path

import pytest

import pgshift
from pgshift.cli.main import main
from pgshift.errors import UsageError
from pgshift.lint.registry import load_rules

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "rules"


def test_explain_prints_the_rules_page(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "set-not-null"]) == 0
    out = capsys.readouterr().out
    assert out == (DOCS / "set-not-null.md").read_text(encoding="utf-8").rstrip("\n") + "\n"
    assert out.startswith("# set-not-null\n")


def test_an_unknown_rule_is_exit_2_with_the_closest_names(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["explain", "set-not-nul"]) == 2
    err = capsys.readouterr().err
    assert "no lint rule is called 'set-not-nul'" in err
    assert "did you mean set-not-null" in err
    assert main(["explain", "../../README"]) == 2
    assert "no lint rule is called" in capsys.readouterr().err


def test_the_library_returns_the_same_page() -> None:
    assert pgshift.explain("drop-trigger") == (DOCS / "drop-trigger.md").read_text(encoding="utf-8")
    with pytest.raises(UsageError) as caught:
        pgshift.explain("drop-trigge")
    assert caught.value.exit_code == 2
    assert caught.value.hint is not None and "drop-trigger" in caught.value.hint


def test_every_rule_has_a_page_in_the_package_and_it_is_the_docs_page() -> None:
    """One source of truth: the package's rule_docs is docs/rules itself (a link), and
    setuptools ships its pages as package data."""
    shipped = resources.files("pgshift") / "rule_docs"
    for code in load_rules():
        page = shipped / f"{code}.md"
        assert page.is_file(), code
        assert page.read_bytes() == (DOCS / f"{code}.md").read_bytes(), code
    link = ROOT / "src" / "pgshift" / "rule_docs"
    assert link.is_symlink() and link.resolve() == DOCS.resolve()
    with (ROOT / "pyproject.toml").open("rb") as fh:
        package_data = tomllib.load(fh)["tool"]["setuptools"]["package-data"]["pgshift"]
    assert "rule_docs/*.md" in package_data


def test_the_installed_command_explains(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pgshift", "explain", "drop-default"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "severity: **note** · category: **semantics**" in result.stdout
