"""Rolling back over a backfill that was SIGKILLed part-way and so never recorded applied.

The killed `up` committed some batches of V2 (a `@kind: backfill`); V2 is not applied, and
its progress lives only in the backfill's own row. `rollback emergency` (back to the state
before that `up`) and `rollback safe` (the newest change first) both revert it with its
rollback file (itself a backfill here), say so, and forget its progress, so that a later
`up` runs it again from the start. Before, emergency found "nothing to revert" and left the
changed rows, and `rollback safe` dropped V1's table beneath the half-done backfill, whose
stale progress a later `up` then resumed after its last batch, skipping the rows before it.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from tests.plugins.project import ProjectMaker, migration_pair
from tests.support import applied_versions, query, spawn_cli

V1, V2 = "20250101000000", "20250102000000"
ROWS = 20_000
ENV = {"PGSHIFT_BACKFILL_BATCH_TIME": "0", "DB_BACKUP_ENABLED": "false"}


def _half_done_backfill(make_project: ProjectMaker, db_url: str) -> Path:
    """V1 applied by one `up`; V2's backfill killed by SIGKILL after a few batches of another."""
    project = make_project(
        migration_pair(
            V1,
            "items",
            "CREATE TABLE items (id bigserial PRIMARY KEY, v text);\n"
            f"INSERT INTO items (v) SELECT NULL FROM generate_series(1, {ROWS});\n"
            "ANALYZE items;",
            rollback_sql="DROP TABLE items;",
        )
    )
    code, output = run_cli(project, db_url, "up", "--yes", env=ENV)
    assert code == 0, output
    make_project(
        migration_pair(
            V2,
            "mark items",
            "UPDATE items SET v = 'new';",
            rollback_sql="-- @kind: backfill\nUPDATE items SET v = NULL WHERE v = 'new';",
            extra_header=["@kind: backfill", "@batch-size: 500", "@batch-pause: 30ms"],
        )
    )
    child = spawn_cli(project, db_url, "up", "--yes", env=ENV)
    deadline = time.monotonic() + 60
    while _batches(db_url) < 3:
        assert child.poll() is None, "the backfill ended before it could be killed"
        assert time.monotonic() < deadline, "the backfill did not start"
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=60)
    assert applied_versions(db_url) == [V1]
    done = _marked(db_url)
    assert 0 < done < ROWS
    return project


def run_cli(project: Path, db_url: str, *args: str, env: dict[str, str]) -> tuple[int, str]:
    """`pgshift <args>` as a process: its exit code, and stdout and stderr together."""
    child = spawn_cli(project, db_url, *args, env=env)
    out, err = child.communicate(timeout=120)
    return child.returncode, out + err


def _batches(db_url: str) -> int:
    exists = query(db_url, "SELECT to_regclass('pgshift.backfill') IS NOT NULL")[0][0]
    if not exists:
        return 0
    return int(query(db_url, "SELECT coalesce(max(batches), 0) FROM pgshift.backfill")[0][0])


def _marked(db_url: str) -> int:
    return int(query(db_url, "SELECT count(*) FROM items WHERE v = 'new'")[0][0])


def _backfill_rows(db_url: str) -> list[tuple[object, ...]]:
    return query(db_url, "SELECT version, action FROM pgshift.backfill ORDER BY 1, 2")


def _status_of_v2(project: Path, db_url: str) -> dict[str, object]:
    child = spawn_cli(project, db_url, "status", "--json", env=ENV)
    out, err = child.communicate(timeout=60)
    assert child.returncode in (0, 1), err
    row: dict[str, object] = next(r for r in json.loads(out)["migrations"] if r["version"] == V2)
    return row


@pytest.mark.parametrize("command", [("rollback", "emergency"), ("rollback", "safe")])
def test_a_rollback_reverts_a_half_done_backfill_with_its_rollback_file(
    make_project: ProjectMaker, db_url: str, command: tuple[str, str]
) -> None:
    project = _half_done_backfill(make_project, db_url)
    stopped = _status_of_v2(project, db_url)
    assert stopped["backfill"] is not None  # status shows it stopped part-way

    code, output = run_cli(project, db_url, "rollback", "dry-run", env=ENV)
    assert code == 0, output
    assert V2 in output and "backfill stopped half-way" in output, output

    code, output = run_cli(project, db_url, *command, "--yes", env=ENV)
    assert code == 0, output
    assert V2 in output, output
    assert _marked(db_url) == 0  # its rollback file ran over every batch it had committed
    assert applied_versions(db_url) == [V1]  # what the half-done backfill stood on stays
    # Its progress forgotten with the revert; the rollback backfill's own row, finished, stays
    # until the next apply (as after any revert by a backfill).
    assert _backfill_rows(db_url) == [(V2, "revert")]
    after = _status_of_v2(project, db_url)
    assert after["backfill"] is None and after["state"] == "pending", after

    code, output = run_cli(project, db_url, "up", "--yes", env=ENV)
    assert code == 0, output
    assert _marked(db_url) == ROWS  # from the start: no row skipped
    assert applied_versions(db_url) == [V1, V2]
