"""Expand and contract under SIGKILL (issue 21: every intermediate state recoverable after a kill).

`pgshift up` of an `@expand-contract` migration (a rename and a widening on a table of tens of
thousands of rows) runs in a child process that is killed inside each part of the expand
phase: the setup transaction, the backfill, the VACUUM after it, the concurrent index builds (once
with its orphaned build terminated, which leaves an INVALID index, once with it left to
finish unrecorded). Each part is held by a gate the test owns (a lock, a locked row, an old
snapshot), so the kill lands in it for certain; the instant inside it is drawn from a seeded
generator, so a failure can be replayed. The old code's workload runs throughout and must see
no error; at the end both shapes agree on every row and hold every value it wrote last.
`pgshift contract` is killed once mid-way too, and a kill at each boundary of the expand
(db/execute.py's failpoints) is rerun without running a statement twice.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from tests.plugins.project import ProjectMaker, migration_pair
from tests.support import query, spawn_cli

V1, V2 = "20260101000000", "20260102000000"
SHADOW = f"amount_pgshift_new_{V2}"
NAME_INDEX = f"accounts_name_key_pgshift_ix_{V2}"
AMOUNT_INDEX = f"accounts_amount_idx_pgshift_ix_{V2}"
ROWS = 40_000
#: Batches aimed at 20 ms: the backfill of ROWS takes a second or two, in tens of batches.
ENV = {"DB_BACKUP_ENABLED": "false", "PGSHIFT_BACKFILL_BATCH_TIME": "20"}

TABLE = (
    "CREATE TABLE accounts (\n"
    "    id bigserial PRIMARY KEY,\n"
    "    name text NOT NULL,\n"
    "    amount integer NOT NULL DEFAULT 0,\n"
    "    CONSTRAINT accounts_name_key UNIQUE (name)\n"
    ");\n"
    "CREATE INDEX accounts_amount_idx ON accounts (amount);"
)
EXPAND = (
    "ALTER TABLE accounts RENAME COLUMN name TO full_name;\n"
    "ALTER TABLE accounts ALTER COLUMN amount TYPE bigint;"
)
UNEXPAND = (
    "ALTER TABLE accounts RENAME COLUMN full_name TO name;\n"
    "ALTER TABLE accounts ALTER COLUMN amount TYPE integer;"
)


def _project(make_project: ProjectMaker, db_url: str, rows: int) -> Path:
    files = migration_pair(V1, "accounts", TABLE, rollback_sql="DROP TABLE accounts;")
    files.update(
        migration_pair(
            V2,
            "rename and widen",
            EXPAND,
            rollback_sql=UNEXPAND,
            extra_header=["@expand-contract: true"],
        )
    )
    project = make_project(files)
    code, output = _finish(spawn_cli(project, db_url, "up", "--yes", "--target", V1, env=ENV))
    assert code == 0, output
    query(
        db_url,
        "INSERT INTO accounts (name, amount) SELECT 'n' || g, g FROM generate_series(1, %s) g",
        [rows],
    )
    query(db_url, "ANALYZE accounts")
    return project


def _finish(child: subprocess.Popen[str], timeout_s: float = 300) -> tuple[int, str]:
    out, err = child.communicate(timeout=timeout_s)
    return child.returncode, out + err


def _wait(
    what: str,
    check: Callable[[], bool],
    child: subprocess.Popen[str] | None = None,
    timeout_s: float = 120,
) -> None:
    """Until ``check()``; fails when ``child`` ends first (with its output) or on timeout."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if child is not None and child.poll() is not None:
            raise AssertionError(f"ended before {what}: {_finish(child)[1]}")
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.01)


class OldCode(threading.Thread):
    """The old code: inserts, updates (of its own rows and of the rows the backfill copies),
    upserts, deletes and reads with RETURNING, by the old names and types only. It remembers
    what it wrote last to each row, and checks every read against it."""

    def __init__(self, url: str, rows: int, seed: int) -> None:
        super().__init__(daemon=True)
        self.url, self.rows = url, rows
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.last: dict[int, tuple[str, int]] = {}
        self.deleted: set[int] = set()
        self.operations = 0

    def _expect(self, what: str, got: object, wanted: object) -> None:
        if got != wanted:
            self.errors.append(f"{what}: got {got!r}, wanted {wanted!r}")

    def run(self) -> None:
        try:
            with psycopg.connect(self.url, autocommit=True) as conn:
                i = 0
                while not self.stop.is_set():
                    i += 1
                    self._round(conn, i)
                    self.operations += 1
                    time.sleep(0.002)  # a busy application, not a benchmark: share the cores
        except Exception as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")

    def _round(self, conn: psycopg.Connection[tuple[object, ...]], i: int) -> None:
        key = f"old-{i}"
        row = conn.execute(
            "INSERT INTO accounts (name, amount) VALUES (%s, %s) RETURNING id, name, amount",
            (key, i),
        ).fetchone()
        assert row is not None
        new_id = int(str(row[0]))
        self._expect("insert", row[1:], (key, i))
        self.last[new_id] = (key, i)
        conn.execute("UPDATE accounts SET amount = %s WHERE id = %s", (i + 1, new_id))
        self.last[new_id] = (key, i + 1)
        got = conn.execute(
            "INSERT INTO accounts (name, amount) VALUES (%s, %s) ON CONFLICT (name)"
            " DO UPDATE SET amount = excluded.amount RETURNING id, name, amount",
            (key, i + 2),
        ).fetchone()
        self._expect("upsert", got, (new_id, key, i + 2))
        self.last[new_id] = (key, i + 2)
        # A row that existed before expand, written while the backfill may be copying it.
        old_id = self.rng.randint(1, self.rows)
        moved = conn.execute(
            "UPDATE accounts SET name = %s, amount = %s WHERE id = %s RETURNING name, amount",
            (f"{key}-moved", -i, old_id),
        ).fetchone()
        self._expect("update of an existing row", moved, (f"{key}-moved", -i))
        self.last[old_id] = (f"{key}-moved", -i)
        for checked in (new_id, old_id):
            read = conn.execute(
                "SELECT name, amount FROM accounts WHERE id = %s", (checked,)
            ).fetchone()
            self._expect(f"read of {checked}", read, self.last[checked])
        if i % 3 == 0:
            gone = conn.execute("DELETE FROM accounts WHERE id = %s RETURNING id", (new_id,))
            self._expect("delete", gone.fetchone(), (new_id,))
            del self.last[new_id]
            self.deleted.add(new_id)

    def finish(self) -> None:
        self.stop.set()
        self.join(timeout=60)
        assert not self.is_alive()
        assert self.errors == [], self.errors[:5]
        assert self.operations > 0


@contextmanager
def _held(db_url: str, sql: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """Run ``sql`` in a transaction the test keeps open (a gate) until the block ends."""
    with psycopg.connect(db_url) as conn:
        conn.execute(sql)
        try:
            yield conn
        finally:
            conn.rollback()


def _runner_waits(db_url: str, like: str) -> bool:
    """A session other than the test's runs a statement matching ``like`` and waits on a lock
    or on other transactions (a concurrent index build waiting for old snapshots)."""
    return bool(
        query(
            db_url,
            "SELECT 1 FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND state = 'active' AND wait_event_type = 'Lock'"
            " AND query LIKE %s",
            [like],
        )
    )


def _progress(db_url: str) -> int | None:
    rows = query(db_url, "SELECT statements_done FROM pgshift.progress WHERE version = %s", [V2])
    return int(str(rows[0][0])) if rows else None


def _backfill_started(db_url: str) -> bool:
    rows = query(
        db_url,
        "SELECT 1 FROM pg_catalog.pg_tables"
        " WHERE schemaname = 'pgshift' AND tablename = 'backfill'",
    )
    return bool(rows) and bool(
        query(db_url, "SELECT 1 FROM pgshift.backfill WHERE version = %s AND batches > 0", [V2])
    )


def _orphan_pid(db_url: str, like: str) -> int | None:
    rows = query(
        db_url,
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        " AND pid <> pg_backend_pid() AND query LIKE %s",
        [like],
    )
    return int(str(rows[0][0])) if rows else None


def _kill(child: subprocess.Popen[str], rng: random.Random, low: float, high: float) -> str:
    """SIGKILL ``child`` at a seeded random instant in [low, high] s from now; its output."""
    time.sleep(rng.uniform(low, high))
    assert child.poll() is None, _finish(child)[1]  # the gate holds it: it cannot have ended
    child.send_signal(signal.SIGKILL)
    code, output = _finish(child)
    assert code == -signal.SIGKILL, output
    return output


def _state(project: Path, db_url: str) -> str:
    child = spawn_cli(project, db_url, "status", "--json", env=ENV)
    out, err = child.communicate(timeout=120)
    assert child.returncode in (0, 1), out + err
    report = json.loads(out)
    return str(next(m["state"] for m in report["migrations"] if m["version"] == V2))


def _disagreeing(db_url: str) -> int:
    rows = query(
        db_url,
        "SELECT count(*) FROM accounts WHERE full_name IS DISTINCT FROM name"
        f" OR {SHADOW} IS DISTINCT FROM amount::bigint",
    )
    return int(str(rows[0][0]))


def _invalid_indexes(db_url: str) -> list[str]:
    return [
        str(r[0])
        for r in query(
            db_url,
            "SELECT indexrelid::regclass::text FROM pg_index"
            " WHERE indrelid = 'accounts'::regclass AND NOT (indisvalid AND indisready)",
        )
    ]


def _index_oids(db_url: str) -> dict[str, int]:
    return {
        str(r[0]): int(str(r[1]))
        for r in query(
            db_url,
            "SELECT c.relname, c.oid FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid"
            " WHERE x.indrelid = 'accounts'::regclass",
        )
    }


def _assert_expanded(project: Path, db_url: str, rows: int) -> None:
    """What a finished expand must leave: state expanded, nothing half-done, both shapes
    equal on every row, the new shape's indexes built and valid, its checks validated."""
    assert _state(project, db_url) == "expanded"
    assert query(db_url, "SELECT count(*) FROM pgshift.progress") == [(0,)]
    assert _disagreeing(db_url) == 0
    assert _invalid_indexes(db_url) == []
    assert {NAME_INDEX, AMOUNT_INDEX} <= set(_index_oids(db_url))
    definitions = dict(
        query(
            db_url,
            "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index"
            " WHERE indrelid = 'accounts'::regclass",
        )
    )
    assert "UNIQUE" in str(definitions[NAME_INDEX]) and "(full_name)" in str(
        definitions[NAME_INDEX]
    )
    assert f"({SHADOW})" in str(definitions[AMOUNT_INDEX])
    assert (
        query(
            db_url,
            "SELECT conname FROM pg_constraint"
            " WHERE conrelid = 'accounts'::regclass AND NOT convalidated",
        )
        == []
    )
    original = query(db_url, "SELECT count(*) FROM accounts WHERE id <= %s", [rows])
    assert original == [(rows,)]  # the old code deletes only rows it inserted


def _assert_last_writes(db_url: str, old: OldCode, columns: str) -> None:
    """Every row the old code wrote holds, in ``columns``, exactly what it wrote last."""
    found = {
        int(str(r[0])): tuple(r[1:])
        for r in query(
            db_url, f"SELECT id, {columns} FROM accounts WHERE id = ANY(%s)", [list(old.last)]
        )
    }
    wrong = {
        i: (found.get(i), v)
        for i, v in old.last.items()
        if found.get(i) not in ((v[0], v[1]), (v[0], v[1], v[0], v[1]))
    }
    assert wrong == {}, list(wrong.items())[:5]
    assert query(
        db_url, "SELECT count(*) FROM accounts WHERE id = ANY(%s)", [list(old.deleted)]
    ) == [(0,)]


def _leftovers(db_url: str) -> list[str]:
    return [
        str(r[0])
        for r in query(
            db_url,
            "SELECT relname FROM pg_class WHERE relname LIKE '%pgshift%'"
            " AND relnamespace <> 'pgshift'::regnamespace"
            " UNION ALL SELECT attname FROM pg_attribute WHERE attrelid = 'accounts'::regclass"
            " AND attname LIKE '%pgshift%'"
            " UNION ALL SELECT tgname FROM pg_trigger WHERE tgname LIKE '%pgshift%'"
            " UNION ALL SELECT proname FROM pg_proc WHERE proname LIKE '%pgshift%'"
            " AND pronamespace <> 'pgshift'::regnamespace"
            " UNION ALL SELECT conname FROM pg_constraint WHERE conname LIKE '%pgshift%'",
        )
    ]


def _columns(db_url: str) -> dict[str, str]:
    rows = query(
        db_url,
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
        " WHERE attrelid = 'accounts'::regclass AND attnum > 0 AND NOT attisdropped",
    )
    return {str(r[0]): str(r[1]) for r in rows}


def _up(project: Path, db_url: str) -> subprocess.Popen[str]:
    return spawn_cli(project, db_url, "up", "--yes", env=ENV)


def test_sigkills_inside_every_part_of_expand_and_contract_then_reruns(
    make_project: ProjectMaker, db_url: str
) -> None:
    project = _project(make_project, db_url, ROWS)
    rng = random.Random(20260621)
    old = OldCode(db_url, ROWS, seed=21)
    old.start()
    killed: list[str] = []
    try:
        # 1. Inside the setup transaction: a reader's lock holds its ALTER TABLE, which waits
        # and retries under lock_timeout; killed while it waits or between two tries.
        with _held(db_url, "LOCK TABLE accounts IN ACCESS SHARE MODE"):
            child = _up(project, db_url)
            _wait(
                "the setup waits for its lock", lambda: _runner_waits(db_url, "%ADD COLUMN%"), child
            )
            _kill(child, rng, 0.0, 1.5)
        killed.append("setup")
        # 2. During the backfill: once the setup has committed (by this run, or by the
        # orphaned session of the first), a row near the end of the key range is locked, so
        # the backfill cannot end before the kill; killed mid-batch or between batches.
        child = _up(project, db_url)
        _wait("the setup committed", lambda: (_progress(db_url) or 0) >= 6, child)
        with _held(db_url, f"SELECT 1 FROM accounts WHERE id = {ROWS - 5} FOR UPDATE"):
            _wait("the backfill runs", lambda: _backfill_started(db_url), child)
            _kill(child, rng, 0.0, 1.0)
        assert _progress(db_url) == 6  # the backfill did not end
        assert query(db_url, "SELECT finished_at FROM pgshift.backfill") == [(None,)]
        killed.append("backfill")
        # 3. During the VACUUM after the backfill: SHARE UPDATE EXCLUSIVE, which it (and
        # every VALIDATE CONSTRAINT after it) needs; killed while it waits or between tries.
        with _held(db_url, "LOCK TABLE accounts IN SHARE UPDATE EXCLUSIVE MODE"):
            child = _up(project, db_url)
            _wait("the VACUUM waits", lambda: _runner_waits(db_url, "%VACUUM%"), child)
            _kill(child, rng, 0.0, 1.2)
        assert _progress(db_url) == 7  # the backfill ended; the VACUUM was not recorded
        killed.append("vacuum")
        # 4. During a concurrent index build, waiting for an old snapshot: its orphaned
        # session is terminated, which leaves the index INVALID for the rerun to rebuild.
        cic = "%CREATE UNIQUE INDEX CONCURRENTLY%"
        with _held(db_url, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ; SELECT 1"):
            child = _up(project, db_url)
            _wait("the index build waits", lambda: _cic_waits(db_url), child)
            _kill(child, rng, 0.0, 0.5)
            pid = _orphan_pid(db_url, cic)
            assert pid is not None
            query(db_url, "SELECT pg_terminate_backend(%s)", [pid])
            _wait("the orphan is gone", lambda: _orphan_pid(db_url, cic) is None)
        assert _invalid_indexes(db_url) == [NAME_INDEX]
        killed.append("index build, orphan terminated")
        # 5. The same build again (the rerun drops the INVALID index first), killed while it
        # waits; this time its orphan is left to finish: valid, but never recorded.
        with _held(db_url, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ; SELECT 1"):
            child = _up(project, db_url)
            _wait("the index build waits", lambda: _cic_waits(db_url), child)
            _kill(child, rng, 0.0, 0.5)
        _wait("the orphaned build finished", lambda: _orphan_pid(db_url, cic) is None)
        assert _invalid_indexes(db_url) == [] and NAME_INDEX in _index_oids(db_url)
        assert _progress(db_url) == 9  # the build is done, but no run recorded it
        built = _index_oids(db_url)[NAME_INDEX]
        killed.append("index build, orphan finished")
        # Reruns until `up` finishes.
        for _ in range(3):
            code, output = _finish(_up(project, db_url))
            if code == 0:
                break
        assert code == 0, output
        assert _index_oids(db_url)[NAME_INDEX] == built  # the orphan's build, not run again
        events = [r[0] for r in query(db_url, "SELECT event FROM pgshift.log ORDER BY id")]
        assert events.count("invalid_index_rebuilt") == 1
        _assert_expanded(project, db_url, ROWS)
    finally:
        old.finish()
    _assert_last_writes(db_url, old, "name, amount, full_name, " + SHADOW)
    assert killed == [
        "setup",
        "backfill",
        "vacuum",
        "index build, orphan terminated",
        "index build, orphan finished",
    ]

    # Contract, killed mid-way: its one transaction waits for a reader's lock, then the kill.
    with _held(db_url, "LOCK TABLE accounts IN ACCESS SHARE MODE"):
        child = spawn_cli(project, db_url, "contract", "--yes", env=ENV)
        _wait("contract waits for its lock", lambda: _runner_waits(db_url, "%DROP TRIGGER%"), child)
        _kill(child, rng, 0.0, 1.5)
    assert _state(project, db_url) == "expanded"  # nothing of contract committed
    code, output = _finish(spawn_cli(project, db_url, "contract", "--yes", env=ENV))
    assert code == 0, output
    assert _state(project, db_url) == "applied"
    assert _columns(db_url) == {"id": "bigint", "full_name": "text", "amount": "bigint"}
    assert _leftovers(db_url) == []
    assert _invalid_indexes(db_url) == []
    assert {"accounts_pkey", "accounts_name_key", "accounts_amount_idx"} == set(_index_oids(db_url))
    assert query(
        db_url,
        "SELECT contype FROM pg_constraint WHERE conname = 'accounts_name_key'"
        " AND conrelid = 'accounts'::regclass",
    ) == [("u",)]
    _assert_last_writes(db_url, old, "full_name, amount")


def _cic_waits(db_url: str) -> bool:
    """A concurrent index build of the runner waits for other transactions to end."""
    return bool(
        query(
            db_url,
            "SELECT 1 FROM pg_stat_progress_create_index p"
            " JOIN pg_stat_activity a ON a.pid = p.pid"
            " WHERE a.datname = current_database() AND p.phase LIKE 'waiting for%'",
        )
    )


#: Fixed batches of 5,000 rows (the default size): the backfill of FEW rows is 3 batches.
FIXED = {**ENV, "PGSHIFT_BACKFILL_BATCH_TIME": "0"}
FEW = 12_000

#: Where db/execute.py's and db/backfill.py's failpoints cut the expand of V2 (its 12
#: statements: the setup transaction 0-5, the backfill 6, a VACUUM 7, a validation 8, a
#: concurrent unique index 9, a validation 10, a concurrent index 11): after each commit,
#: after a batch ran and after it committed, and after a statement run alone ran but before
#: it was recorded.
FAILPOINTS = [
    f"committed:{V2}:6",  # the setup transaction committed, the backfill not begun
    f"backfill-ran:{V2}:2",  # a batch ran, its transaction not committed
    f"backfill-committed:{V2}:2",
    f"committed:{V2}:0",  # the backfill finished; the step's progress moved past it
    f"ran:{V2}:7",  # the VACUUM done, not recorded (it runs again: harmless)
    f"committed:{V2}:9",  # a validation committed
    f"ran:{V2}:9",  # a concurrent build done, not recorded
    f"committed:{V2}:10",
    f"committed:{V2}:11",
    f"ran:{V2}:11",  # the expand's last statement done; its applied row not written
]


def _killed_at(project: Path, db_url: str, point: str) -> None:
    child = spawn_cli(project, db_url, "up", "--yes", env={**FIXED, "PGSHIFT_FAILPOINT": point})
    code, output = _finish(child)
    assert code == -signal.SIGKILL, output  # the failpoint was reached


@pytest.mark.parametrize("point", FAILPOINTS)
def test_a_kill_at_each_boundary_of_expand_reruns_no_statement_twice(
    make_project: ProjectMaker, db_url: str, point: str
) -> None:
    project = _project(make_project, db_url, FEW)
    _killed_at(project, db_url, point)
    assert _state(project, db_url) != "expanded"  # no applied row: not half-recorded
    assert _progress(db_url) is not None  # what ran is recorded, for the rerun
    before = _index_oids(db_url)
    code, output = _finish(spawn_cli(project, db_url, "up", "--yes", env=FIXED))
    assert code == 0, output
    _assert_expanded(project, db_url, FEW)
    # Each statement once: a second ADD COLUMN, CREATE FUNCTION, CREATE TRIGGER or CREATE
    # INDEX would have failed the rerun, and an index built by the killed run is the same
    # object afterwards (neither built again nor dropped and rebuilt).
    after = _index_oids(db_url)
    assert {name: after.get(name) for name in before} == before
    assert query(
        db_url, "SELECT count(*) FROM pgshift.log WHERE event = 'invalid_index_rebuilt'"
    ) == [(0,)]
    contract = query(
        db_url,
        "SELECT metadata->'expand'->'contract' FROM pgshift.applied WHERE version = %s",
        [V2],
    )
    assert contract and contract[0][0]  # the applied row keeps what contract will run


def test_rollback_safe_after_a_killed_expand_refuses_and_names_up(
    make_project: ProjectMaker, db_url: str
) -> None:
    """Killed half-way through its expand, the migration is neither applied nor expanded.
    `rollback safe` used to revert the migration beneath it instead (here: DROP TABLE
    accounts, under the live trigger, with a mere warning); it now refuses, changes nothing,
    and names the way out. After `up` finishes the expand, it takes it back as usual."""
    project = _project(make_project, db_url, FEW)
    _killed_at(project, db_url, f"ran:{V2}:9")
    half = _columns(db_url)
    assert set(half) == {"id", "name", "amount", "full_name", SHADOW}
    for verb in ("dry-run", "safe"):
        args = ("rollback", verb) if verb == "dry-run" else ("rollback", verb, "--yes")
        code, output = _finish(spawn_cli(project, db_url, *args, env=ENV))
        assert "half-expanded" in output, output
        assert f"the expand of {V2} stopped half-way (9 statement(s) done)" in output
        assert "run `pgshift up` to finish it, then `pgshift rollback safe`" in output
        if verb == "safe":
            assert code == 2, output
            assert "refusing to roll back, nothing was changed" in output
    assert _columns(db_url) == half  # nothing was changed
    assert query(db_url, "SELECT version FROM pgshift.applied") == [(V1,)]
    code, output = _finish(spawn_cli(project, db_url, "up", "--yes", env=FIXED))
    assert code == 0, output
    code, output = _finish(spawn_cli(project, db_url, "rollback", "safe", "--yes", env=ENV))
    assert code == 0, output
    assert _columns(db_url) == {"id": "bigint", "name": "text", "amount": "integer"}
    assert _leftovers(db_url) == []
    assert query(db_url, "SELECT version FROM pgshift.applied") == [(V1,)]
    assert query(db_url, "SELECT count(*) FROM accounts") == [(FEW,)]


@pytest.mark.parametrize("point", [f"committed:{V2}:6", f"ran:{V2}:9"])
def test_rollback_emergency_after_a_killed_expand_runs_its_undo(
    make_project: ProjectMaker, db_url: str, point: str
) -> None:
    """`rollback emergency` reverts a half-applied migration; for a half-expanded one that is
    the undo phase, derived again from the catalog, never the rollback file (written for the
    final shape: here it would rename a column that does not exist yet). The old shape is
    back, with every row, and the migration beneath stays applied."""
    project = _project(make_project, db_url, FEW)
    _killed_at(project, db_url, point)
    status = spawn_cli(project, db_url, "status", "--json", env=ENV).communicate(timeout=120)[0]
    [row] = [m for m in json.loads(status)["migrations"] if m["version"] == V2]
    assert row["state"] == "failed"
    assert "its expand phase stopped after" in row["detail"]
    assert "`pgshift up` finishes it" in row["detail"]
    code, output = _finish(spawn_cli(project, db_url, "rollback", "emergency", "--yes", env=ENV))
    assert code == 0, output
    assert _columns(db_url) == {"id": "bigint", "name": "text", "amount": "integer"}
    assert _leftovers(db_url) == []
    assert query(db_url, "SELECT version FROM pgshift.applied") == [(V1,)]
    assert query(db_url, "SELECT count(*) FROM pgshift.progress") == [(0,)]
    assert query(db_url, "SELECT count(*) FROM accounts") == [(FEW,)]
    code, output = _finish(spawn_cli(project, db_url, "up", "--yes", env=FIXED))
    assert code == 0, output  # and it expands again from the start
    assert _state(project, db_url) == "expanded"
