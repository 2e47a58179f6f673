"""docs/preflight.md's example, run as written on each server: its SQL, its Python, its output."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import psycopg
import pytest
from tests.support import CliResult, doc_commands, query

from pgshift.cli.main import main

DOC = Path(__file__).resolve().parents[2] / "docs" / "preflight.md"


def _block(section: str, language: str) -> str:
    return section.split(f"```{language}\n", 1)[1].split("```", 1)[0]


def test_the_example_prints_what_the_page_shows(
    db_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    section = DOC.read_text(encoding="utf-8").split("\n## Example\n", 1)[1]
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(_block(section, "sql").encode())
    for key in list(os.environ):
        if key.startswith(("DB_", "PGSHIFT_", "PG")) or key == "DATABASE_URL":
            monkeypatch.delenv(key)
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.chdir(DOC.parent)
    capsys.readouterr()
    exec(compile(_block(section, "python"), str(DOC), "exec"), {})  # noqa: S102
    assert capsys.readouterr().out == _block(section, "text")


def test_the_up_section_runs_as_written(
    tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`## With \\`up\\``: its files are the project, its commands run in order over the
    example's data, with the exit codes and the refusal the page shows."""
    text = DOC.read_text(encoding="utf-8")
    example = text.split("\n## Example\n", 1)[1]
    section = text.split("\n## With `up`\n", 1)[1]
    query(db_url, _block(example, "sql"))
    (tmp_path / "migrations").mkdir()
    for block in re.findall(r"```sql\n(.*?)```", section, flags=re.DOTALL):
        name = re.match(r"-- (?:Migration|Rollback): (\S+)", block)
        assert name is not None, block
        (tmp_path / "migrations" / name.group(1)).write_text(block, encoding="utf-8")
    for key in list(os.environ):
        if key.startswith(("DB_", "PGSHIFT_")) or key == "DATABASE_URL":
            monkeypatch.delenv(key)
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("DB_MIGRATIONS_DIR", "migrations")
    monkeypatch.chdir(tmp_path)
    results, backups_before = [], []
    for line in doc_commands(DOC, "With `up`"):
        backups_before.append((tmp_path / ".pgshift" / "backups").exists())
        words = shlex.split(line)
        assert words[0] == "pgshift", line
        capsys.readouterr()
        code = main(words[1:])
        captured = capsys.readouterr()
        results.append(CliResult(code, captured.out, captured.err))
    dry_run, refused, as_json, skipped = results
    assert dry_run.code == 0 and "not-null" in dry_run.out and "fail" in dry_run.out
    assert refused.code == 1
    shown = refused.err.replace(f"{tmp_path}/", "")  # the page shows paths from the project
    assert _block(section, "text") in shown
    assert backups_before == [False, False, False, False]  # nothing taken before the skip
    data = as_json.json()
    assert as_json.code == 1 and data["error"]["exit_code"] == 1
    assert [r["status"] for r in data["preflight"] if r["check"] == "not-null"] == ["fail"]
    assert skipped.code == 1 and "contains null values" in skipped.err
    events = [r[0] for r in query(db_url, "SELECT event FROM pgshift.log ORDER BY id")]
    assert events[:2] == ["preflight_skipped", "run_started"]  # the refusals wrote nothing
    assert "migration_failed" in events
