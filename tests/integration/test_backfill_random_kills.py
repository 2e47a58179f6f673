"""A backfill SIGKILLed at random instants, five times, each followed by a rerun (issue 20's goal).

Every row is updated exactly once (a counter column proves it), rows inserted while the
backfill runs stay untouched (the key range is fixed when it starts), and after every kill
`status --json` says exactly how many rows are done: what the history says matches the table.
The instants are drawn from a seeded generator, so a failure can be replayed.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.plugins.project import ProjectMaker, migration_pair
from tests.support import query, spawn_cli

V1, V2 = "20250101000000", "20250102000000"
ROWS = 30_000
ADDED = 500
#: Fixed batches of 500 rows with a pause between them: the backfill lasts a few seconds, so
#: random instants land before, inside and between batches.
ENV = {"PGSHIFT_BACKFILL_BATCH_TIME": "0", "DB_BACKUP_ENABLED": "false"}


def _project(make_project: ProjectMaker) -> Path:
    make_project(
        migration_pair(
            V1,
            "items",
            "CREATE TABLE items (id bigserial PRIMARY KEY, n int NOT NULL DEFAULT 0);\n"
            f"INSERT INTO items (n) SELECT 0 FROM generate_series(1, {ROWS});\n"
            "ANALYZE items;",
            rollback_sql="DROP TABLE items;",
        )
    )
    return make_project(
        migration_pair(
            V2,
            "count items",
            "UPDATE items SET n = n + 1;",
            extra_header=["@kind: backfill", "@batch-size: 500", "@batch-pause: 20ms"],
        )
    )


def _started(db_url: str) -> bool:
    rows = query(
        db_url,
        "SELECT 1 FROM pg_catalog.pg_tables"
        " WHERE schemaname = 'pgshift' AND tablename = 'backfill'",
    )
    return bool(rows) and bool(query(db_url, "SELECT 1 FROM pgshift.backfill"))


def _wait(what: str, check: Callable[[], bool], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.01)


def _status_rows_done(project: Path, db_url: str) -> int | None:
    child = spawn_cli(project, db_url, "status", "--json", env=ENV)
    out, err = child.communicate(timeout=60)
    assert child.returncode in (0, 1), err
    row = next(r for r in json.loads(out)["migrations"] if r["version"] == V2)
    return None if row["backfill"] is None else int(row["backfill"]["rows_done"])


def test_five_sigkills_at_random_instants_then_reruns_update_every_row_exactly_once(
    make_project: ProjectMaker, db_url: str
) -> None:
    project = _project(make_project)
    rng = random.Random(20261206)
    kills = 0
    finished: subprocess.Popen[str] | None = None
    for attempt in range(12):
        child = spawn_cli(project, db_url, "up", "--yes", env=ENV)
        if attempt == 0:
            _wait("the backfill fixed its key range", lambda: _started(db_url))
            # Written by the application while the backfill runs: beyond the fixed range.
            query(db_url, f"INSERT INTO items (n) SELECT 0 FROM generate_series(1, {ADDED})")
        time.sleep(rng.uniform(0.0, 0.6))
        if child.poll() is not None:
            finished = child
            break
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=60)
        kills += 1
        done = int(query(db_url, "SELECT count(*) FROM items WHERE n = 1")[0][0])
        shown = _status_rows_done(project, db_url)
        assert shown == done or (shown is None and done == 0), (shown, done)
        if kills == 5:
            break
    assert kills == 5 or finished is not None
    last = finished or spawn_cli(project, db_url, "up", "--yes", env=ENV)
    out, err = last.communicate(timeout=120)
    assert last.returncode == 0, out + err
    counts = {int(n): int(c) for n, c in query(db_url, "SELECT n, count(*) FROM items GROUP BY n")}
    assert counts == {1: ROWS, 0: ADDED}  # once each; the rows added meanwhile untouched
    assert _status_rows_done(project, db_url) is None  # finished: no backfill left to show
    assert kills == 5, f"the backfill finished after {kills} kill(s): make it longer"
