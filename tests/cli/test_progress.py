"""The long proofs say what they are doing while they work (issue 17, finding 12).

`validate --roundtrip` and `--trace`, `rollback dry-run --simulate` and `baseline` were silent for
up to 25 s. Off a terminal (as here, and in CI logs) each step is a plain line on stderr, with the
time spent so far, and stdout keeps the command's answer; `-q` silences them. The library hears
the same steps as `pgshift.Working` events.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import pgshift
from pgshift import events
from pgshift.cli.progress import WorkRenderer, describe
from pgshift.cli.render import Output
from pgshift.config import load_settings
from tests.plugins.project import ProjectMaker, migration_pair
from tests.support import query, run_cli

V1, V2 = "20250101000000", "20250102000000"
USERS = "CREATE TABLE users (id bigint PRIMARY KEY, email text);"
INDEX = "CREATE INDEX CONCURRENTLY users_email ON users (email);"
#: `task [elapsed]: doing (n of m)`: the elapsed time as pgshift prints durations (12ms, 1.2s).
LINE = re.compile(
    r"^(?P<task>[a-z]+) \[(?P<elapsed>[0-9.]+(?:ms|s|m|h)[0-9.a-z ]*)\]: (?P<doing>.+)$"
)


@pytest.fixture(autouse=True)
def _no_backups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_BACKUP_ENABLED", "false")


def _project(make_project: ProjectMaker) -> Path:
    make_project(migration_pair(V1, "users", USERS, rollback_sql="DROP TABLE users;"))
    undo = "DROP INDEX CONCURRENTLY users_email;"
    return make_project(migration_pair(V2, "email index", INDEX, rollback_sql=undo))


def progress_lines(err: str, task: str) -> list[str]:
    """The ``doing`` part of each progress line of ``task``, in order; checks the line's shape."""
    found = []
    for line in err.splitlines():
        match = LINE.match(line)
        if match and match["task"] == task:
            found.append(match["doing"])
    return found


def test_validate_roundtrip_and_trace_say_each_step_on_stderr(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _project(make_project)
    trip = run_cli(capsys, project, db_url, "validate", "--roundtrip", "--json")
    assert trip.code == 0, trip.out + trip.err
    assert trip.json()["roundtrip"]["ok"] is True  # stdout is still the JSON answer alone
    assert progress_lines(trip.err, "roundtrip") == [
        "making a scratch database",
        f"proving {V1}_users (1 of 2)",
        f"proving {V2}_email_index (2 of 2)",
    ], trip.err
    assert re.search(r"^roundtrip: finished in \S+$", trip.err, re.M), trip.err

    traced = run_cli(capsys, project, db_url, "validate", "--trace", "--format", "sarif")
    assert traced.code == 0, traced.out + traced.err
    assert traced.json()["version"] == "2.1.0"
    steps = progress_lines(traced.err, "trace")
    assert steps[0] == "making a scratch database"
    assert steps[1].startswith("copying the target's schema and history into the scratch database")
    assert steps[2:] == [f"tracing {V1}_users (1 of 2)", f"tracing {V2}_email_index (2 of 2)"]
    assert re.search(r"^trace: finished in ", traced.err, re.M)

    quiet = run_cli(capsys, project, db_url, "validate", "--roundtrip", "-q")
    assert quiet.code == 0 and quiet.err == "", quiet.err


def test_rollback_dry_run_simulate_says_each_step(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _project(make_project)
    assert run_cli(capsys, project, db_url, "up", "--yes").code == 0
    result = run_cli(
        capsys, project, db_url, "rollback", "dry-run", "--count", "2", "--simulate", "--json"
    )
    assert result.code == 0, result.out + result.err
    assert result.json()["simulation"]["ok"] is True
    steps = progress_lines(result.err, "simulate")
    assert steps[0] == "making a scratch database"
    assert steps[1].startswith("copying the target's schema and history into the scratch")
    assert steps[2:] == [
        f"reverting {V2}_email_index on the scratch copy (1 of 2)",
        f"reverting {V1}_users on the scratch copy (2 of 2)",
    ]
    assert re.search(r"^simulate: finished in ", result.err, re.M)


def test_baseline_says_each_step_of_its_proof(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _project(make_project)
    query(db_url, USERS)
    query(db_url, INDEX)
    result = run_cli(capsys, project, db_url, "baseline", V2, "--yes")
    assert result.code == 0, result.out + result.err
    steps = progress_lines(result.err, "baseline")
    assert steps[:3] == [
        "making a scratch database",
        f"applying {V1}_users on the scratch database (1 of 2)",
        f"applying {V2}_email_index on the scratch database (2 of 2)",
    ], result.err
    assert steps[3].startswith("reading the schema the migrations built on the scratch database")
    assert steps[4:] == ["comparing it with the target's schema"]
    assert re.search(r"^baseline: finished in ", result.err, re.M)


def test_the_library_hears_the_same_steps_as_events(
    make_project: ProjectMaker, db_url: str
) -> None:
    project = _project(make_project)
    settings = load_settings(
        {"database_url": db_url, "migrations_dir": str(project / "migrations")}, cwd=project
    )
    heard: list[events.Event] = []
    pgshift.validate(settings, roundtrip=True, on_event=heard.append)
    working = [e for e in heard if isinstance(e, pgshift.Working)]
    assert [(e.task, e.done, e.total) for e in working] == [
        ("roundtrip", None, None),
        ("roundtrip", 1, 2),
        ("roundtrip", 2, 2),
    ]
    (done,) = [e for e in heard if isinstance(e, pgshift.WorkDone)]
    assert done.task == "roundtrip" and done.duration_ms > 0
    assert heard[-1] == done


def test_plain_lines_and_the_end_of_a_failed_task(capsys: pytest.CaptureFixture[str]) -> None:
    """The renderer alone: a task that fails still ends its display (WorkDone comes from a
    finally), and other events are ignored, so it can be a command's whole event sink."""
    renderer = WorkRenderer(Output())
    with pytest.raises(RuntimeError), events.working(renderer, "trace") as say:
        say("making a scratch database")
        renderer(events.RunStarted("r1", ()))  # not a Working event: ignored
        say("tracing x", 1, 3)
        raise RuntimeError("the scratch server went away")
    err = capsys.readouterr().err.splitlines()
    assert [LINE.match(line)["doing"] for line in err[:2]] == [  # type: ignore[index]
        "making a scratch database",
        "tracing x (1 of 3)",
    ]
    assert err[2].startswith("trace: finished in ") and len(err) == 3
    assert describe(events.Working("t", "x")) == "x"
