"""Backfills on real servers: the batched statement does what the single statement does, exactly
once per row across SIGKILLs (mid-batch and between batches), along primary, composite and
@batch-key keys, for UPDATE, DELETE and INSERT ... SELECT.

A counter column (`n = n + 1`) shows a row updated twice; the kills are db/backfill.py's
failpoints, hit by a child process that runs the library function.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support import query

from pgshift import events as ev
from pgshift.db.target import Target
from pgshift.errors import DriftError, HalfApplied, InputError, MigrationFailed
from pgshift.model import Migration
from pgshift.ops.backfill import BackfillOptions, next_aim, next_batch_size, run_backfill
from pgshift.ops.stopping import StopRequest
from pgshift.source.loader import load_migrations

ROOT = Path(__file__).resolve().parents[2]
V = "20250101000000"
#: Fixed batch sizes (no adaptation), so the tests know where each batch ends.
FIXED = BackfillOptions(batch_time_ms=0, max_lag_ms=0)


def _migration(folder: Path, sql: str, *header: str) -> Migration:
    folder.mkdir(exist_ok=True)
    for old in folder.glob("*.sql"):
        old.unlink()
    lines = ["-- @kind: backfill", *header, sql]
    (folder / f"{V}_fill.sql").write_text("\n".join(lines) + "\n")
    (folder / f"{V}_fill_rollback.sql").write_text("SELECT 1;\n")
    [migration] = load_migrations(folder)
    return migration


@pytest.fixture
def target(db_url: str) -> Iterator[Target]:
    with Target(db_url) as opened:
        opened.prepare()
        yield opened


def _progress(db_url: str) -> tuple[int, int, int, bool]:
    [row] = query(
        db_url,
        "SELECT batches, rows_done, keys_done, finished_at IS NOT NULL FROM pgshift.backfill",
    )
    return int(row[0]), int(row[1]), int(row[2]), bool(row[3])


def _table(db_url: str, name: str, rows: int) -> None:
    query(
        db_url,
        f"CREATE TABLE {name} (id bigserial PRIMARY KEY, n int NOT NULL DEFAULT 0, v int);"
        f" INSERT INTO {name} (v) SELECT g FROM generate_series(1, {rows}) g; ANALYZE {name}",
    )


def _digest(db_url: str, name: str) -> str:
    rows = query(db_url, f"SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM {name} t")
    return str(rows[0][0])


def test_a_backfill_gives_the_table_the_single_statement_gives(
    db_url: str, target: Target, tmp_path: Path
) -> None:
    _table(db_url, "a", 100_000)
    _table(db_url, "b", 100_000)
    statement = "UPDATE {t} SET n = n + 1, v = v * 2 WHERE v % 3 <> 0 OR v IS NULL;"
    query(db_url, statement.format(t="b"))
    events: list[ev.Event] = []
    migration = _migration(tmp_path / "m", statement.format(t="a"), "-- @batch-size: 4000")
    result = run_backfill(target, V, migration, emit=events.append)
    assert _digest(db_url, "a") == _digest(db_url, "b")
    changed = 100_000 - 100_000 // 3
    assert (result.rows_done, result.keys_done) == (changed, 100_000)
    assert result.batches > 3 and result.batches == result.batches_this_run
    assert _progress(db_url) == (result.batches, changed, 100_000, True)
    started = [e for e in events if isinstance(e, ev.BackfillStarted)]
    assert [(s.table, s.key, s.estimate, s.batch_size) for s in started] == [
        ("a", ("id",), 100_000, 4000)
    ]
    last = [e for e in events if isinstance(e, ev.BackfillProgress)][-1]
    assert (last.keys_done, last.percent, last.rows_done) == (100_000, 100.0, changed)
    assert last.rows_per_s > 0
    # Run again: it is finished, nothing runs a second time.
    again = run_backfill(target, V, migration)
    assert (again.batches_this_run, again.rows_done) == (0, changed)
    assert _digest(db_url, "a") == _digest(db_url, "b")


CHILD = """
import sys
from pathlib import Path
from pgshift.db.target import Target
from pgshift.ops.backfill import BackfillOptions, run_backfill
from pgshift.source.loader import load_migrations

url, folder = sys.argv[1], sys.argv[2]
[migration] = load_migrations(Path(folder))
with Target(url) as target:
    target.prepare()
    run_backfill(target, migration.version, migration,
                 options=BackfillOptions(batch_time_ms=0, max_lag_ms=0))
print("finished")
"""


def _child(db_url: str, folder: Path, failpoint: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PGSHIFT_FAILPOINT": failpoint}
    return subprocess.run(
        [sys.executable, "-c", CHILD, db_url, str(folder)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_kills_mid_batch_and_between_batches_then_resume_update_every_row_once(
    db_url: str, target: Target, tmp_path: Path
) -> None:
    _table(db_url, "items", 20_000)
    folder = tmp_path / "m"
    migration = _migration(folder, "UPDATE items SET n = n + 1;", "-- @batch-size: 1000")

    # Killed after the third batch's UPDATE ran, before its transaction committed.
    died = _child(db_url, folder, f"backfill-ran:{V}:3")
    assert died.returncode == -signal.SIGKILL, died.stderr
    assert _progress(db_url) == (2, 2000, 2000, False)
    assert query(db_url, "SELECT n, count(*) FROM items GROUP BY n ORDER BY n") == [
        (0, 18_000),
        (1, 2000),
    ]
    # Rows the application writes now are beyond the range fixed at the start.
    query(db_url, "INSERT INTO items (v) SELECT g FROM generate_series(1, 500) g")

    # Killed right after the fifth batch committed.
    died = _child(db_url, folder, f"backfill-committed:{V}:5")
    assert died.returncode == -signal.SIGKILL, died.stderr
    assert _progress(db_url) == (5, 5000, 5000, False)

    result = run_backfill(target, V, migration, options=FIXED)
    assert result.resumed and result.batches_this_run == 15
    assert _progress(db_url) == (20, 20_000, 20_000, True)
    assert sorted(query(db_url, "SELECT n, count(*) FROM items GROUP BY n")) == [
        (0, 500),
        (1, 20_000),
    ]
    assert query(db_url, "SELECT count(*) FROM items WHERE id > 20000 AND n <> 0") == [(0,)]


def test_a_composite_key_and_a_text_batch_key(db_url: str, target: Target, tmp_path: Path) -> None:
    query(
        db_url,
        "CREATE TABLE pairs (tenant int, seq int, n int NOT NULL DEFAULT 0,"
        " PRIMARY KEY (tenant, seq));"
        " INSERT INTO pairs (tenant, seq) SELECT t, s FROM generate_series(1, 5) t,"
        " generate_series(1, 2000) s",
    )
    migration = _migration(tmp_path / "m", "UPDATE pairs p SET n = p.n + 1;", "-- @batch-size: 777")
    result = run_backfill(target, V, migration, options=FIXED)
    assert result.key == ("tenant", "seq")
    assert result.batches == -(-10_000 // 777)
    assert query(db_url, "SELECT n, count(*) FROM pairs GROUP BY n") == [(1, 10_000)]

    # A text key with no primary key: the keys go back to the server as text and are
    # compared in the column's own type and collation.
    query(
        db_url,
        'CREATE TABLE codes ("Code" text NOT NULL UNIQUE, n int NOT NULL DEFAULT 0);'
        " INSERT INTO codes SELECT 'c' || g || ' ''x' FROM generate_series(1, 3000) g",
    )
    migration = _migration(
        tmp_path / "m2",
        "UPDATE codes SET n = n + 1;",
        '-- @batch-key: "Code"',
        "-- @batch-size: 250",
    )
    target.session.execute("DELETE FROM pgshift.backfill")
    result = run_backfill(target, V, migration, options=FIXED)
    assert (result.key, result.batches) == (("Code",), 12)
    assert query(db_url, "SELECT n, count(*) FROM codes GROUP BY n") == [(1, 3000)]


def test_delete_and_insert_select(db_url: str, target: Target, tmp_path: Path) -> None:
    _table(db_url, "a", 10_000)
    _table(db_url, "b", 10_000)
    query(db_url, "DELETE FROM b WHERE v % 4 = 1")
    migration = _migration(tmp_path / "m", "DELETE FROM a WHERE v % 4 = 1;", "-- @batch-size: 900")
    result = run_backfill(target, V, migration, options=FIXED)
    assert result.rows_done == 2500
    assert _digest(db_url, "a") == _digest(db_url, "b")

    query(db_url, "CREATE TABLE copy (id bigint PRIMARY KEY, v int)")
    query(db_url, "INSERT INTO copy VALUES (2, -1)")  # ON CONFLICT keeps it
    sql = (
        "INSERT INTO copy (id, v) SELECT s.id, s.v * 10 FROM a s WHERE s.v % 2 = 0"
        " ON CONFLICT (id) DO NOTHING;"
    )
    migration = _migration(tmp_path / "m2", sql, "-- @batch-size: 1000")
    target.session.execute("DELETE FROM pgshift.backfill")
    result = run_backfill(target, V, migration, options=FIXED)
    assert (result.table, result.keys_done) == ("a", 7500)
    expected = query(
        db_url,
        "SELECT count(*), sum(v * 10) FROM a WHERE v % 2 = 0 AND id <> 2",
    )[0]
    assert query(db_url, "SELECT count(*) - 1, sum(v) + 1 FROM copy") == [expected]
    assert result.rows_done == expected[0]


def test_keys_that_cannot_serve_are_refused_with_the_reason(
    db_url: str, target: Target, tmp_path: Path
) -> None:
    query(
        db_url,
        "CREATE TABLE loose (a int, b int NOT NULL, c int NOT NULL, d int NOT NULL UNIQUE);"
        " CREATE UNIQUE INDEX ON loose (c) WHERE c > 0",
    )
    cases = [
        ((), "has no primary key to batch along"),
        (("-- @batch-key: a",), "loose.a may be NULL"),
        (("-- @batch-key: b",), "no unique index of loose covers only (b)"),
        (("-- @batch-key: c",), "no unique index of loose covers only (c)"),  # partial
        (("-- @batch-key: zz",), "loose has no column zz"),
    ]
    for index, (header, reason) in enumerate(cases):
        migration = _migration(tmp_path / f"m{index}", "UPDATE loose SET a = 1;", *header)
        with pytest.raises(MigrationFailed, match=reason.replace("(", r"\(").replace(")", r"\)")):
            run_backfill(target, V, migration, options=FIXED)
    # A unique NOT NULL key serves; a statement that moves its key is refused (a file problem).
    query(db_url, "INSERT INTO loose SELECT g, g, g, g FROM generate_series(1, 10) g")
    migration = _migration(tmp_path / "ok", "UPDATE loose SET a = 2;", "-- @batch-key: b, d")
    assert run_backfill(target, V, migration, options=FIXED).rows_done == 10
    migration = _migration(tmp_path / "bad", "UPDATE loose SET d = d + 100;", "-- @batch-key: d")
    with pytest.raises(InputError) as caught:
        run_backfill(target, V, migration, options=FIXED)
    assert caught.value.exit_code == 2
    assert "sets the key column d" in str(caught.value.problems[0])


def test_a_stop_request_ends_between_batches_and_a_changed_file_is_drift(
    db_url: str, target: Target, tmp_path: Path
) -> None:
    _table(db_url, "items", 5000)
    migration = _migration(tmp_path / "m", "UPDATE items SET n = n + 1;", "-- @batch-size: 1000")
    stop = StopRequest()

    def stop_after_two(event: ev.Event) -> None:
        if isinstance(event, ev.BackfillProgress) and event.batches == 2:
            stop.signum = signal.SIGTERM

    options = dataclass_replace(FIXED, progress_every_s=0.0)
    with pytest.raises(HalfApplied, match="stopped by SIGTERM after 2,000 rows"):
        run_backfill(target, V, migration, options=options, emit=stop_after_two, stop=stop)
    assert _progress(db_url)[:3] == (2, 2000, 2000)

    edited = _migration(tmp_path / "m", "UPDATE items SET n = n + 2;", "-- @batch-size: 1000")
    with pytest.raises(DriftError, match="its statement changed since it started"):
        run_backfill(target, V, edited, options=FIXED)
    result = run_backfill(target, V, migration, options=FIXED)
    assert (result.batches_this_run, result.batches) == (3, 5)
    assert query(db_url, "SELECT n, count(*) FROM items GROUP BY n") == [(1, 5000)]


def test_a_locked_row_makes_the_batch_retry_not_fail(
    db_url: str, target: Target, tmp_path: Path
) -> None:
    import threading

    import psycopg

    _table(db_url, "items", 3000)
    migration = _migration(tmp_path / "m", "UPDATE items SET n = n + 1;", "-- @batch-size: 1000")
    events: list[ev.Event] = []
    with psycopg.connect(db_url) as blocker:
        blocker.execute("SELECT 1 FROM items WHERE id = 1500 FOR UPDATE")
        release = threading.Timer(1.0, blocker.commit)
        release.start()
        options = dataclass_replace(FIXED, lock_timeout_ms=50, retry_cap_ms=200)
        result = run_backfill(target, V, migration, options=options, emit=events.append)
        release.join()
    retries = [e for e in events if isinstance(e, ev.LockRetry)]
    assert retries and all("lock" in e.detail for e in retries)
    assert result.batches == 3
    assert query(db_url, "SELECT n, count(*) FROM items GROUP BY n") == [(1, 3000)]


def test_sessions_waiting_on_a_batch_pause_the_backfill_and_shorten_its_batches(
    db_url: str, target: Target, tmp_path: Path
) -> None:
    """A session that meets a row of the batch under way waits for that batch to commit: the
    batch counts it (pg_blocking_pids, before COMMIT), and the loop pauses and aims its next
    batches at half the time. Each batch here sleeps 0.3 s at its last row (a slow batch)
    while another session keeps updating the batch's first row."""
    import threading

    import psycopg

    _table(db_url, "items", 3000)
    sleepy = (
        "UPDATE items SET n = n + 1"
        " + length(CASE WHEN id % 1000 = 0 THEN pg_sleep(0.3)::text ELSE '' END);"
    )
    migration = _migration(tmp_path / "m", sleepy, "-- @batch-size: 1000")
    stop = threading.Event()
    waits: list[float] = []

    def app() -> None:
        import time

        with psycopg.connect(db_url, autocommit=True) as conn:
            while not stop.is_set():
                done = query(db_url, "SELECT coalesce(max(batches), 0) FROM pgshift.backfill")
                first = 1 + 1000 * int(done[0][0])  # the first row of the batch under way
                began = time.monotonic()
                conn.execute("UPDATE items SET v = v WHERE id = %s", (first,))
                waits.append(time.monotonic() - began)
                time.sleep(0.02)

    events: list[ev.Event] = []
    worker = threading.Thread(target=app)
    worker.start()
    try:
        options = BackfillOptions(batch_time_ms=400, max_lag_ms=0, waiter_pause_ms=30)
        result = run_backfill(target, V, migration, options=options, emit=events.append)
    finally:
        stop.set()
        worker.join()
    assert result.batches >= 3
    paused = [e for e in events if isinstance(e, ev.BackfillPaused)]
    assert paused and paused[0].reason == "lock-waiters", events
    assert paused[0].pause_ms == 30
    assert "1 session(s) waited on the last batch's rows" in paused[0].detail
    assert "batches now aim at 200 ms" in paused[0].detail  # half of 400 ms
    assert max(waits) >= 0.1  # the application really waited on a batch
    assert query(db_url, "SELECT n, count(*) FROM items GROUP BY n") == [(1, 3000)]


def dataclass_replace(options: BackfillOptions, **changes: object) -> BackfillOptions:
    import dataclasses

    return dataclasses.replace(options, **changes)  # type: ignore[arg-type]


def test_the_batch_size_follows_the_target_time() -> None:
    assert next_batch_size(5000, 100, 200, 1_000_000) == 10_000
    assert next_batch_size(5000, 50, 200, 1_000_000) == 10_000  # at most doubled
    assert next_batch_size(5000, 400, 200, 1_000_000) == 2500
    assert next_batch_size(5000, 4000, 200, 1_000_000) == 2500  # at most halved
    assert next_batch_size(900_000, 10, 200, 1_000_000) == 1_000_000
    assert next_batch_size(1, 1000, 200, 1_000_000) == 1
    assert next_batch_size(5000, 10, 0, 1_000_000) == 5000  # 0: fixed size


def test_the_aim_shortens_while_sessions_wait_and_grows_back_only_after_a_quiet_spell() -> None:
    """A waiter halves the aim (down to an eighth); quiet batches keep it there until nobody
    has waited for quiet_s, then it grows back by a quarter per batch up to the full time."""
    aim = 200.0
    aim = next_aim(aim, 200, waiters=1, quiet_for_s=0.0, quiet_s=10.0)
    assert aim == 100.0
    for _ in range(5):
        aim = next_aim(aim, 200, waiters=2, quiet_for_s=0.0, quiet_s=10.0)
    assert aim == 25.0  # 200 / 8, no lower
    for quiet in (0.1, 3.0, 9.9):  # nobody waits, but not for long enough: it stays short
        aim = next_aim(aim, 200, waiters=0, quiet_for_s=quiet, quiet_s=10.0)
    assert aim == 25.0
    aim = next_aim(aim, 200, waiters=0, quiet_for_s=10.0, quiet_s=10.0)
    assert aim == 31.25
    for _ in range(20):
        aim = next_aim(aim, 200, waiters=0, quiet_for_s=12.0, quiet_s=10.0)
    assert aim == 200.0
