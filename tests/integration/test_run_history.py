"""`pgshift history` and `pgshift mark` (issue 17, item 17): the runs recorded in the database,
read without the lock, and a migration recorded as applied or not by hand, under the lock and
logged with its reason. Command line and library, on both servers."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

import psycopg
import pytest
from tests.plugins.project import ProjectMaker, migration_pair
from tests.support import (
    applied_versions,
    count_events,
    doc_commands,
    on_terminal,
    query,
    run_cli,
    run_doc_commands,
)

import pgshift
from pgshift.config import load_settings
from pgshift.db.lock import lock_key
from pgshift.errors import LockBusy, UsageError

V1, V2, V3 = "20250101000000", "20250102000000", "20250103000000"
BROKEN = "CREATE TABLE three (id int);\nINSERT INTO nowhere VALUES (1);\n"


def _project(make_project: ProjectMaker, third: str = BROKEN) -> Path:
    make_project(
        migration_pair(V1, "one", "CREATE TABLE one (id int);", rollback_sql="DROP TABLE one;")
    )
    make_project(
        migration_pair(V2, "two", "CREATE TABLE two (id int);", rollback_sql="DROP TABLE two;")
    )
    return make_project(
        migration_pair(V3, "three", third, rollback_sql="DROP TABLE three;", deps=[V2])
    )


def _settings(project: Path, db_url: str) -> pgshift.Settings:
    return load_settings(
        {"database_url": db_url, "migrations_dir": str(project / "migrations")}, cwd=project
    )


def _three_runs(project: Path, db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """An up of two, a rollback of one, and an up that fails on the third."""
    assert (
        run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup", "--target", V2).code == 0
    )
    assert run_cli(capsys, project, db_url, "rollback", "safe", "--yes", "--skip-backup").code == 0
    failed = run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup")
    assert failed.code == 1, failed.err


def test_history_lists_each_run_newest_first_with_who_what_and_how_it_ended(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _project(make_project)
    _three_runs(project, db_url, capsys)

    result = run_cli(capsys, project, db_url, "history", "--json")
    assert result.code == 0, result.err
    runs = result.json()["runs"]
    assert [r["kind"] for r in runs] == ["up", "rollback", "up"]
    assert [r["outcome"] for r in runs] == ["failed", "finished", "finished"]
    failed, rollback, first = runs
    assert first["applied"] == [V1, V2] and rollback["reverted"] == [V2]
    assert failed["applied"] == [V2] and failed["failed"] == [V3]
    assert "nowhere" in failed["error"]
    assert first["host"] == socket.gethostname() and first["user"]
    assert isinstance(first["duration_ms"], int) and first["duration_ms"] >= 0
    assert first["started_at"] <= first["ended_at"] < rollback["started_at"]
    events = [e["event"] for e in first["events"]]
    assert events[0] == "run_started" and events[-1] == "run_finished"
    assert events.count("migration_applied") == 2

    text = run_cli(capsys, project, db_url, "history")
    assert text.code == 0
    blocks = text.out.split("\n\n")
    assert len(blocks) == 3
    assert blocks[0].startswith(f"run {failed['run_id']} · up · failed")
    assert "failed: " + V3 in blocks[0] and "nowhere" in blocks[0]
    assert f"migration_reverted  {V2}" in blocks[1]

    one = run_cli(capsys, project, db_url, "history", "--json", "--limit", "1").json()["runs"]
    assert [r["run_id"] for r in one] == [failed["run_id"]]
    picked = run_cli(capsys, project, db_url, "history", "--json", "--run", rollback["run_id"][:8])
    assert [r["run_id"] for r in picked.json()["runs"]] == [rollback["run_id"]]

    report = pgshift.run_history(_settings(project, db_url), limit=2)
    assert [r.run_id for r in report.runs] == [failed["run_id"], rollback["run_id"]]
    assert report.runs[0].events[-1].event in ("run_failed", "migration_failed")


def test_history_refuses_a_bad_run_id_or_limit_and_names_it(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _project(make_project)
    assert (
        run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup", "--target", V1).code == 0
    )
    for args, words in (
        (["--run", "x'; DROP TABLE one; --"], "hexadecimal"),
        (["--run", "ffffffff"], "no run recorded"),
        (["--limit", "0"], "--limit 0"),
    ):
        result = run_cli(capsys, project, db_url, "history", *args)
        assert result.code == 2 and words in result.err, result.err
    assert "one" in {r[0] for r in query(db_url, "SELECT tablename FROM pg_tables")}
    with pytest.raises(UsageError):
        pgshift.run_history(_settings(project, db_url), run="ffffffff")


def test_history_of_a_database_pgshift_never_touched_is_empty_and_stays_untouched(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _project(make_project)
    result = run_cli(capsys, project, db_url, "history")
    assert result.code == 0 and "no runs recorded" in result.out
    assert run_cli(capsys, project, db_url, "history", "--json").json() == {"runs": []}
    assert not query(db_url, "SELECT 1 FROM pg_namespace WHERE nspname = 'pgshift'")


def test_history_reads_while_another_run_holds_the_lock(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _project(make_project)
    assert (
        run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup", "--target", V1).code == 0
    )
    with psycopg.connect(db_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (lock_key("pgshift"),))
        started = time.monotonic()
        result = run_cli(capsys, project, db_url, "history", "--json")
        assert result.code == 0, result.err
        assert time.monotonic() - started < 5  # not PGSHIFT_RUNNER_LOCK_WAIT's minute
    assert result.json()["runs"][0]["applied"] == [V1]


def test_history_never_starts_the_embedded_server(
    make_project: ProjectMaker, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name == "DATABASE_URL" or name.startswith("PG"):
            monkeypatch.delenv(name)
    project = _project(make_project)
    result = run_cli(capsys, project, None, "history", "--json")
    assert result.code == 0, result.err
    assert result.json() == {"runs": []}
    assert not (project / ".pgshift" / "pgdata").exists()
    (project / ".pgshift" / "pgdata").mkdir(parents=True)  # a server made once, not running
    stopped = run_cli(capsys, project, None, "history")
    assert stopped.code == 3 and "not running" in stopped.err, stopped.err


# -- mark ---------------------------------------------------------------------------------------


def test_a_failed_migration_finished_by_hand_is_marked_applied_from_its_file(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _project(make_project)
    assert run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup").code == 1
    query(db_url, "CREATE TABLE three (id int)")  # the repair, by hand
    status = run_cli(capsys, project, db_url, "status", "--json").json()
    assert [m["state"] for m in status["migrations"]] == ["applied", "applied", "failed"]

    result = run_cli(
        capsys, project, db_url, "mark", V3, "--applied", "--reason", "made by hand", "--yes"
    )
    assert result.code == 0, result.err
    assert f"recorded {V3} as applied (it was failed)" in result.out

    status = run_cli(capsys, project, db_url, "status", "--json").json()
    assert [m["state"] for m in status["migrations"]] == ["applied", "applied", "applied"]
    stored = query(
        db_url, "SELECT rollback_sql, run_id::text FROM pgshift.applied WHERE version = %s", [V3]
    )
    assert "DROP TABLE three" in stored[0][0]
    mark = query(db_url, "SELECT detail FROM pgshift.log WHERE event = 'mark'")[0][0]
    assert mark["reason"] == "made by hand" and mark["applied"] is True
    assert mark["before"] == "failed" and mark["host"] == socket.gethostname() and mark["user"]
    runs = run_cli(capsys, project, db_url, "history", "--json").json()["runs"]
    assert runs[0]["kind"] == "mark" and runs[0]["run_id"] == stored[0][1]
    assert runs[0]["applied"] == [V3] and runs[0]["outcome"] == "recorded"
    text = run_cli(capsys, project, db_url, "history", "--limit", "1").out
    assert "reason=made by hand" in text

    again = run_cli(capsys, project, db_url, "mark", V3, "--applied", "--reason", "x", "--yes")
    assert again.code == 0 and "already recorded as applied" in again.out
    assert count_events(db_url, "mark") == 1

    # Flyway's repair: a file edited after it was applied (drift), the edit made by hand too.
    edited = project / "migrations" / f"{V1}_one.sql"
    edited.write_text(edited.read_text().replace("(id int)", "(id bigint)"), encoding="utf-8")
    query(db_url, "ALTER TABLE one ALTER COLUMN id TYPE bigint")
    states = run_cli(capsys, project, db_url, "status", "--json").json()["migrations"]
    assert states[0]["state"] == "drifted"
    old = query(db_url, "SELECT checksum FROM pgshift.applied WHERE version = %s", [V1])[0][0]
    repaired = run_cli(capsys, project, db_url, "mark", V1, "--applied", "--reason", "r", "--yes")
    assert repaired.code == 0 and "(it was drifted)" in repaired.out, repaired.out
    states = run_cli(capsys, project, db_url, "status", "--json").json()["migrations"]
    assert [m["state"] for m in states] == ["applied", "applied", "applied"]
    details = query(db_url, "SELECT detail FROM pgshift.log WHERE event = 'mark' ORDER BY id")
    assert details[-1][0]["previous_checksum"] == old


def test_marked_not_applied_removes_the_row_and_any_progress(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A migration that stopped part-way outside a transaction leaves a progress row; undone by
    hand and marked not applied, it is pending again with nothing left of that run."""
    project = _project(
        make_project,
        third="CREATE INDEX CONCURRENTLY two_id ON two (id);\nINSERT INTO nowhere VALUES (1);\n",
    )
    assert run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup").code != 0
    assert query(db_url, "SELECT version FROM pgshift.progress") == [(V3,)]
    query(db_url, "DROP INDEX two_id")
    result = run_cli(
        capsys,
        project,
        db_url,
        "mark",
        V3,
        "--not-applied",
        "--reason",
        "undone",
        "--yes",
        "--json",
    )
    assert result.code == 0, result.err
    assert result.json()["changed"] is True and result.json()["applied"] is False
    assert query(db_url, "SELECT version FROM pgshift.progress") == []
    status = run_cli(capsys, project, db_url, "status", "--json").json()
    assert [m["state"] for m in status["migrations"]] == ["applied", "applied", "pending"]

    settings = _settings(project, db_url)
    done = pgshift.mark(settings, V2, applied=False, reason="dropped two by hand")
    assert done.changed and done.before == "applied" and applied_versions(db_url) == [V1]
    assert done.warnings == ()  # nothing applied depends on it
    ahead = pgshift.mark(settings, V3, applied=True, reason="made three by hand")
    assert ahead.warnings == (f"{V3} depends on {V2}, not applied",)
    assert pgshift.mark(settings, V3, applied=False, reason="not yet").changed
    back = pgshift.mark(settings, V2, applied=True, reason="restored")
    assert back.changed and applied_versions(db_url) == [V1, V2]


def test_mark_refuses_a_version_without_a_file_a_missing_reason_and_a_held_lock(
    make_project: ProjectMaker,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = _project(make_project)
    assert (
        run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup", "--target", V1).code == 0
    )
    make_project(
        {"20250104000000_bad.sql": "-- Migration: 20250104000000_bad.sql\nCREATE TABLE (;\n"}
    )
    bad = run_cli(
        capsys, project, db_url, "mark", "20250104000000", "--applied", "--reason", "r", "--yes"
    )
    assert bad.code == 2 and "20250104000000_bad.sql" in bad.err, bad.err
    nofile = run_cli(
        capsys, project, db_url, "mark", "20250909000000", "--applied", "--reason", "r", "--yes"
    )
    assert nofile.code == 2 and "no migration file has this version" in nofile.err
    for args in (["--yes"], ["--reason", "r"], []):
        refused = run_cli(capsys, project, db_url, "mark", V2, "--applied", *args)
        assert refused.code == 2 and "no terminal" in refused.err, refused.err
    neither = run_cli(capsys, project, db_url, "mark", V2, "--reason", "r", "--yes")
    assert neither.code == 2
    assert count_events(db_url, "mark") == 0 and applied_versions(db_url) == [V1]

    monkeypatch.setenv("PGSHIFT_RUNNER_LOCK_WAIT", "300")
    with psycopg.connect(db_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (lock_key("pgshift"),))
        busy = run_cli(capsys, project, db_url, "mark", V2, "--applied", "--reason", "r", "--yes")
        assert busy.code == 3 and "holds the migration lock" in busy.err, busy.err
        with pytest.raises(LockBusy):
            pgshift.mark(_settings(project, db_url), V2, applied=True, reason="r")
    assert count_events(db_url, "mark") == 0 and applied_versions(db_url) == [V1]


def test_mark_asks_for_the_reason_and_confirmation_on_a_terminal(
    make_project: ProjectMaker, db_url: str
) -> None:
    project = _project(make_project)
    argv = [sys.executable, "-m", "pgshift", "mark", V1, "--applied", "--dir",
            str(project / "migrations")]  # fmt: skip
    answers = [(b"Why", b"ran it in psql during the outage\n"), (b"[y/N]", b"y\n")]
    env = {**os.environ, "DATABASE_URL": db_url, "COLUMNS": "200"}
    code, screen = on_terminal(argv, cwd=project, env=env, answers=answers, timeout_s=60)
    assert code == 0, screen
    assert applied_versions(db_url) == [V1]
    detail = query(db_url, "SELECT detail FROM pgshift.log WHERE event = 'mark'")[0][0]
    assert detail["reason"] == "ran it in psql during the outage"


# -- library conveniences -------------------------------------------------------------------------


def test_load_project_takes_a_folder_and_connect_takes_a_url(
    make_project: ProjectMaker, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _project(make_project)
    monkeypatch.chdir(project)
    for where in ("migrations", project / "migrations", str(project / "migrations")):
        loaded = pgshift.load_project(where)
        assert loaded.versions == (V1, V2, V3)
    with pgshift.connect(db_url) as target:
        assert target.read_history().applied == ()
        assert target.facts.major >= 15
    with pytest.raises(pgshift.PgshiftError) as refused:
        pgshift.connect("not a url at all")
    assert refused.value.exit_code == 2


# -- docs/history.md ---------------------------------------------------------------------------

DOC = Path(__file__).resolve().parents[2] / "docs" / "history.md"


def test_the_repair_walk_through_of_the_history_page(
    make_project: ProjectMaker,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lines = doc_commands(DOC, "A migration repaired by hand")
    assert any(line.startswith(f"pgshift mark {V2} --applied") for line in lines)
    make_project(migration_pair(V1, "one", "CREATE TABLE one (id int);"))
    root = make_project(migration_pair(V2, "two", "CREATE TABLE two (id int);\n" + BROKEN))
    assert run_cli(capsys, root, db_url, "up", "--yes", "--skip-backup").code == 1
    query(db_url, "CREATE TABLE two (id int); CREATE TABLE three (id int)")  # finished by hand
    results = run_doc_commands(
        capsys,
        monkeypatch,
        root,
        lines,
        {"DATABASE_URL": db_url, "DB_MIGRATIONS_DIR": "migrations"},
    )
    assert "· up · failed" in results[0].out and "nowhere" in results[0].out
    assert "failed" in results[1].out
    assert applied_versions(db_url) == [V1, V2]
    last = json.loads(results[-1].out)["runs"][0]
    assert last["kind"] == "mark" and last["applied"] == [V2]
    assert last["events"][-1]["detail"]["reason"] == "finished by hand in psql, INC-42"


def test_the_completion_commands_of_the_history_page(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = doc_commands(DOC, "Shell completion")
    assert [line.split()[-1] for line in lines] == ["bash", "zsh", "fish"]
    results = run_doc_commands(capsys, monkeypatch, tmp_path, lines, {})
    assert "complete -F _pgshift pgshift" in results[0].out
    assert results[1].out.startswith("#compdef pgshift")
    assert "complete -c pgshift" in results[2].out
