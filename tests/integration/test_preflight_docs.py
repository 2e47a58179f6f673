"""docs/preflight.md's example, run as written on each server: its SQL, its Python, its output."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest

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
