"""`pgshift contract` on the command line: nothing expanded is nothing to do (exit 0, said so),
the `--dry-run --json` shape, and a version that is not expanded is exit 2 naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

import pgshift
from pgshift.config import load_settings
from tests.plugins.project import ProjectMaker, rename_migrations
from tests.support import run_cli

V1, V2, V9 = "20260101000000", "20260102000000", "20260109000000"


@pytest.fixture
def project(
    make_project: ProjectMaker, db_url: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Path:  # fmt: skip
    """accounts applied; V2 (a column rename, `@expand-contract`) pending."""
    monkeypatch.setenv("DB_BACKUP_ENABLED", "false")
    root = make_project(rename_migrations(V1, V2))
    assert run_cli(capsys, root, db_url, "up", "--yes", "--target", V1).code == 0
    return root


def test_nothing_expanded_is_nothing_to_do(
    project: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Like `up` with nothing pending: a deploy step that always runs it succeeds."""
    result = run_cli(capsys, project, db_url, "contract", "--yes")
    assert (result.code, result.out) == (0, "Nothing to contract: no migration is expanded.\n")
    assert run_cli(capsys, project, db_url, "contract", "--yes", "--json").json() == {
        "run_id": None,
        "steps": [],
    }
    dry = run_cli(capsys, project, db_url, "contract", "--dry-run", "--json")
    assert dry.code == 0 and dry.json() == {"dry_run": True, "steps": []}
    check = run_cli(capsys, project, db_url, "contract", "--check")
    assert (check.code, check.out) == (0, "Nothing to check: no migration is expanded.\n")
    settings = load_settings(
        {"database_url": db_url, "migrations_dir": str(project / "migrations")}, cwd=project
    )
    assert pgshift.contract(settings, backup=False).steps == ()
    assert pgshift.check_contract(settings).watched == ()


def test_a_version_that_is_not_expanded_is_exit_2_naming_it(
    project: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for flags in ((), ("--dry-run",), ("--check",)):
        result = run_cli(capsys, project, db_url, "contract", "--yes", *flags, V1, V2, V9)
        assert result.code == 2, (flags, result.out, result.err)
        assert (
            f"not expanded, nothing to contract: {V1} (applied, not expanded), {V2} (pending),"
            f" {V9} (no such migration)"
        ) in result.err
        assert "`pgshift status` shows which migrations are expanded" in result.err
    both = run_cli(capsys, project, db_url, "contract", "--check", "--dry-run")
    assert both.code == 2 and "--check and --dry-run" in both.err


def test_dry_run_json_shows_what_contract_would_run_and_runs_nothing(
    project: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(capsys, project, db_url, "up", "--yes").code == 0
    dry = run_cli(capsys, project, db_url, "contract", "--dry-run", "--json")
    assert dry.code == 0, dry.err
    data = dry.json()
    assert data["dry_run"] is True
    [step] = data["steps"]
    assert set(step) == {"version", "action", "removes", "statements"}
    assert (step["version"], step["action"]) == (V2, "contract")
    assert any(r.startswith("trigger ") for r in step["removes"])
    assert step["statements"] and all(
        set(s) == {"line", "sql", "transactional"} and isinstance(s["line"], int)
        for s in step["statements"]
    )
    assert any(s["sql"].startswith("DROP TRIGGER") for s in step["statements"])
    states = run_cli(capsys, project, db_url, "status", "--json").json()["migrations"]
    assert {m["version"]: m["state"] for m in states}[V2] == "expanded"  # nothing ran
    named = run_cli(capsys, project, db_url, "contract", "--dry-run", "--json", V2).json()
    assert [s["version"] for s in named["steps"]] == [V2]
    text = run_cli(capsys, project, db_url, "contract", "--check")
    assert text.code == 0, text.out
    assert f"{V2}: looking for public.accounts.name" in text.out
