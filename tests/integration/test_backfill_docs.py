"""docs/backfills.md, run: its example files are the project, its `Try it` commands run in
order (every one exits 0), and what they print is what the page says."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.support import doc_commands, query, run_doc_commands, write_doc_files

DOC = Path(__file__).resolve().parents[2] / "docs" / "backfills.md"


def test_the_backfills_page_runs_as_written(
    tmp_path: Path,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    files = write_doc_files(DOC, tmp_path)
    assert set(files) == {
        "20250102000000_lowercase_emails.sql",
        "20250102000000_lowercase_emails_rollback.sql",
    }
    query(
        db_url,
        "CREATE TABLE accounts (id bigint PRIMARY KEY, email text NOT NULL);"
        " INSERT INTO accounts SELECT g, 'User' || g || '@Example.COM'"
        " FROM generate_series(1, 10000) g; ANALYZE accounts",
    )
    lines = doc_commands(DOC, "Try it")
    assert lines[0].startswith("export ") and len(lines) == 7
    env = {"DATABASE_URL": db_url, "DB_MIGRATIONS_DIR": "migrations", "DB_BACKUP_ENABLED": "false"}
    results = run_doc_commands(capsys, monkeypatch, tmp_path, lines, env)
    _validate, dry_run, up, status, status_json, health = results
    assert "20250102000000_lowercase_emails" in dry_run.out
    assert "-- a backfill: runs in key-range batches" in dry_run.out
    assert "backfill along accounts (id): ~10,000 rows, batches of 2,000" in up.out
    assert "backfill done: 10,000 rows changed" in up.out
    assert "applied" in status.out
    [row] = status_json.json()["migrations"]
    assert row["state"] == "applied" and row["backfill"] is None
    assert "backfills" in health.out
    assert query(db_url, "SELECT count(*) FROM accounts WHERE email <> lower(email)") == [(0,)]


def test_the_wal_facts_the_page_states(db_url: str) -> None:
    """What "What pacing cannot remove" says of PostgreSQL holds on each server: WAL comes in
    16 MB segments, min_wal_size is 80 MB unless set, and the wait events it names exist
    (pg_wait_events lists them from 17; 15's names are the same, as bench/RESULTS.md's
    samples of pg_stat_activity on 15 show)."""
    page = DOC.read_text(encoding="utf-8")
    section = page.split("### What pacing cannot remove", 1)[1].split("\n## ", 1)[0]
    assert "16 MB" in section and "80 MB by default" in section
    [(segment, minimum, unit)] = query(
        db_url,
        "SELECT current_setting('wal_segment_size'), boot_val, unit FROM pg_settings"
        " WHERE name = 'min_wal_size'",
    )
    assert segment == "16MB"
    assert (minimum, unit) == ("80", "MB")
    named = {"WALInitWrite", "WALInitSync", "WALSync"}
    renamed = {name.replace("WAL", "Wal") for name in named}  # 17 renamed them
    assert all(f"`{name}`" in section for name in named | renamed)
    [(major,)] = query(db_url, "SELECT current_setting('server_version_num')::int / 10000")
    if major >= 17:
        rows = query(db_url, "SELECT name FROM pg_wait_events WHERE type = 'IO'")
        assert renamed <= {name for (name,) in rows}
