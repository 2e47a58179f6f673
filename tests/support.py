"""Helpers shared by tests: run the CLI in-process or as a real process, and peek at a database."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgshift.cli.main import main
from pgshift.config import Settings


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def run_cli(
    capsys: pytest.CaptureFixture[str],
    project: Path,
    db_url: str | None,
    *args: str,
) -> CliResult:
    """Run `pgshift <args>` in-process against ``project``'s migrations and ``db_url``."""
    argv = list(args)
    extra = ["--dir", str(project / "migrations")]
    if db_url is not None:
        extra += ["--database-url", db_url]
    capsys.readouterr()
    old = Path.cwd()
    os.chdir(project)
    try:
        code = main([*argv, *extra])
    finally:
        os.chdir(old)
    captured = capsys.readouterr()
    return CliResult(code, captured.out, captured.err)


def spawn_cli(
    project: Path, db_url: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """Start `python -m pgshift <args>` as a real process (no terminal on stdin)."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pgshift",
            *args,
            "--dir",
            str(project / "migrations"),
            "--database-url",
            db_url,
        ],
        cwd=project,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def targets_file(path: Path, targets: Sequence[tuple[str, str, str | None]]) -> Path:
    """A fleet's targets file at ``path``: one ``[[target]]`` per (name, url, tenant schema or
    None for a whole database)."""
    path.write_text(
        "".join(
            f'[[target]]\nname = "{name}"\nurl = "{url}"\n'
            + (f'schema = "{schema}"\n' if schema is not None else "")
            for name, url, schema in targets
        ),
        encoding="utf-8",
    )
    return path


def query(db_url: str, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        cur = conn.execute(sql.encode() if params is None else sql, params)
        return cur.fetchall() if cur.description else []


def tables(db_url: str, schema: str = "public") -> set[str]:
    return {
        r[0]
        for r in query(db_url, "SELECT tablename FROM pg_tables WHERE schemaname = %s", [schema])
    }


def applied_versions(db_url: str) -> list[str]:
    if not query(db_url, "SELECT 1 FROM pg_namespace WHERE nspname = 'pgshift'"):
        return []
    return [r[0] for r in query(db_url, "SELECT version FROM pgshift.applied ORDER BY version")]


def count_events(db_url: str, event: str) -> int:
    """How many log events of a kind; 0 before pgshift created its tables."""
    if not query(db_url, "SELECT to_regclass('pgshift.log') IS NOT NULL")[0][0]:
        return 0
    return int(query(db_url, "SELECT count(*) FROM pgshift.log WHERE event = %s", [event])[0][0])


def doc_files(doc: Path) -> dict[str, str]:
    """A docs page's ```sql blocks, by the file name each names on its first line
    (``-- Migration: <file>`` or ``-- Rollback: <file>``)."""
    import re

    found: dict[str, str] = {}
    for block in re.findall(r"```sql\n(.*?)```", doc.read_text(encoding="utf-8"), flags=re.DOTALL):
        name = re.match(r"-- (?:Migration|Rollback): (\S+)", block)
        assert name is not None, block
        found[name.group(1)] = block
    return found


def write_doc_files(doc: Path, root: Path) -> dict[str, str]:
    """The page's ```sql blocks (doc_files) written into ``root``/migrations, which this
    makes; returns them."""
    files = doc_files(doc)
    (root / "migrations").mkdir()
    for name, text in files.items():
        (root / "migrations" / name).write_text(text, encoding="utf-8")
    return files


def doc_commands(doc: Path, heading: str) -> list[str]:
    """The lines of the ```sh blocks in the `## <heading>` section of a docs page, in order."""
    text = doc.read_text(encoding="utf-8")
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    lines: list[str] = []
    for block in section.split("```sh\n")[1:]:
        lines += [line for line in block.split("```", 1)[0].splitlines() if line.strip()]
    return lines


def run_doc_commands(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    cwd: Path,
    lines: Sequence[str],
    env: dict[str, str],
) -> list[CliResult]:
    """Run a docs page's shell lines as written: `export K=V` sets K, `pgshift ...` runs the
    CLI in-process in ``cwd`` with ``env`` (and nothing else of DB_*/DATABASE_URL) set."""
    import shlex

    for key in list(os.environ):
        if key.startswith(("DB_", "PGSHIFT_")) or key == "DATABASE_URL":
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(cwd)
    results: list[CliResult] = []
    for line in lines:
        words = shlex.split(os.path.expandvars(line))
        if words[0] == "export":
            key, _, value = words[1].partition("=")
            monkeypatch.setenv(key, value)
            continue
        assert words[0] == "pgshift", f"not a pgshift command: {line}"
        capsys.readouterr()
        code = main(words[1:])
        captured = capsys.readouterr()
        result = CliResult(code, captured.out, captured.err)
        assert code == 0, f"`{line}` exited {code}:\n{captured.out}\n{captured.err}"
        results.append(result)
    return results


def on_terminal(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: dict[str, str],
    answers: Sequence[tuple[bytes, bytes]],
    timeout_s: float = 120,
) -> tuple[int, str]:
    """Run ``argv`` on a pseudo-terminal, typing each (prompt, answer) once that prompt shows,
    in order; the exit code and everything the screen showed."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        list(argv), cwd=cwd, stdin=follower, stdout=follower, stderr=follower, env=env
    )
    os.close(follower)
    screen, pending, deadline = b"", list(answers), time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            screen += chunk
        if pending and pending[0][0] in screen:
            os.write(leader, pending.pop(0)[1])
        if proc.poll() is not None and not ready:
            break
    os.close(leader)
    return proc.wait(timeout=30), screen.decode(errors="replace")


#: `pgshift <argv>` through main(), then its exit code and which of the watched modules it
#: imported (a fresh interpreter's sys.modules), as the last line of its output.
_MODULES_LOADED = """
import json, sys
from pgshift.cli.main import main
watched = json.loads(sys.argv[1])
code = main(sys.argv[2:])
print(json.dumps({"code": code, "loaded": sorted(set(watched) & set(sys.modules))}))
"""


def modules_loaded(
    project: Path, db_url: str, watched: Sequence[str], *argv: str
) -> dict[str, object]:
    """`pgshift <argv>` in a fresh interpreter in ``project`` (``db_url`` as DATABASE_URL,
    backups off), as a deploy runs it: ``{"code": exit code, "loaded": watched modules it
    imported}``."""
    env = {**os.environ, "DATABASE_URL": db_url, "DB_BACKUP_ENABLED": "false"}
    done = subprocess.run(
        [sys.executable, "-c", _MODULES_LOADED, json.dumps(list(watched)), *argv],
        cwd=project, env=env, capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def wait_for_sleep(db_url: str, proc: subprocess.Popen[str]) -> int:
    """The pid of the session that sleeps (pg_sleep) in this test's database for ``proc``, once
    it does; fails the test if ``proc`` ends first.

    Found by what it waits for, not by its text: the server keeps only the first kilobyte of a
    message's text, and a batch's sleeping statement may lie further in.
    """
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"pgshift ended before the sleep: {out}{err}")
        rows = query(
            db_url,
            "SELECT pid FROM pg_stat_activity WHERE state = 'active' AND wait_event = 'PgSleep'"
            " AND datname = current_database() AND pid <> pg_backend_pid()",
        )
        if rows:
            return int(rows[0][0])
        time.sleep(0.02)
    pytest.fail("nothing slept")


def applied_by_library(
    project: Path, db_url: str, monkeypatch: pytest.MonkeyPatch, steps: int
) -> Settings:
    """The library's Settings for ``project`` (run from its folder, no backups), after
    `pgshift.up` applied its ``steps`` migrations; then a pause, so that the files' and the
    history's times have moved on before the remembered answers are tested."""
    import pgshift

    monkeypatch.chdir(project)
    settings = pgshift.load_settings({"database_url": db_url, "backup_enabled": "false"})
    assert len(pgshift.up(settings).steps) == steps
    time.sleep(0.01)
    return settings
