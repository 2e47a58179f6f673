"""A backfill pauses while a real streaming replica's replay lags, and goes on once it replays.

Each test builds its own primary and streaming replica (initdb, pg_basebackup -R) from the
binaries of the server it is parametrized with (the embedded 18, the system 15), run as the
`postgres` user when the tests run as root: a replica of the session's shared server would make
every other test's backfill on it pause. The replica's replay is paused with
pg_wal_replay_pause(), so its replay lag grows while the backfill writes WAL.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from tests.plugins.pg import PgServer, tmp_root
from tests.support import query

from pgshift import events as ev
from pgshift.db.target import Target
from pgshift.ops.backfill import BackfillOptions, BackfillResult, run_backfill
from pgshift.source.loader import load_migrations

V = "20250101000000"


@dataclass
class Cluster:
    """One server of the pair: its folder, its socket folder and port."""

    data: Path
    port: int

    def url(self, dbname: str = "postgres") -> str:
        return (
            f"postgresql://postgres@/{quote(dbname, safe='')}"
            f"?host={quote(str(self.data.parent), safe='')}&port={self.port}"
        )


class Pair:
    """A primary and a streaming replica of it, in a folder deleted afterwards."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.base = Path(tempfile.mkdtemp(prefix="pgshift-replica-", dir=tmp_root()))
        self.as_user: list[str] = []
        folders = (self.base, self.base / "primary", self.base / "replica")
        for folder in folders[1:]:
            folder.mkdir(mode=0o700)
        if os.geteuid() == 0:  # initdb refuses root: the servers run as `postgres`
            import pwd

            entry = pwd.getpwnam("postgres")
            for folder in folders:
                os.chown(folder, entry.pw_uid, entry.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.primary = Cluster(self.base / "primary" / "data", _free_port())
        self.replica = Cluster(self.base / "replica" / "data", _free_port())
        self.started: list[Cluster] = []

    def run(self, program: str, *args: str) -> None:
        command = [*self.as_user, str(self.bin_dir / program), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout}{done.stderr}"

    def start(self, cluster: Cluster, *settings: str) -> None:
        options = " ".join([f"-k {cluster.data.parent} -h '' -p {cluster.port}", *settings])
        log = str(cluster.data.parent / "server.log")
        self.run("pg_ctl", "-D", str(cluster.data), "-l", log, "-w", "-o", options, "start")
        self.started.append(cluster)

    def build(self) -> None:
        self.run(
            "initdb", "-D", str(self.primary.data), "-U", "postgres", "--auth=trust",
            "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions",
        )  # fmt: skip
        self.start(self.primary, "-c wal_level=replica -c max_wal_senders=4")
        self.run(
            "pg_basebackup", "-D", str(self.replica.data), "-R", "-X", "stream",
            "-h", str(self.primary.data.parent), "-p", str(self.primary.port), "-U", "postgres",
        )  # fmt: skip
        # Replies every second (default 10 s), so the primary sees the replay position soon.
        self.start(self.replica, "-c hot_standby=on -c wal_receiver_status_interval=1")

    def close(self) -> None:
        for cluster in reversed(self.started):
            subprocess.run(
                [*self.as_user, str(self.bin_dir / "pg_ctl"), "-D", str(cluster.data),
                 "-m", "immediate", "stop"],
                capture_output=True, timeout=60, check=False,
            )  # fmt: skip
        shutil.rmtree(self.base, ignore_errors=True)


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def pair(pg_server: PgServer) -> Iterator[Pair]:
    """A primary and its streaming replica, of the major of ``pg_server``."""
    built = Pair(pg_server.bin_dir)
    try:
        built.build()
        yield built
    finally:
        built.close()


def _wait_for(what: str, check: object, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.mark.needs_tool("pg_basebackup")
def test_a_backfill_pauses_while_a_replica_lags_and_goes_on_when_it_replays(
    pair: Pair, tmp_path: Path
) -> None:
    primary, replica = pair.primary.url(), pair.replica.url()
    query(
        primary,
        "CREATE TABLE items (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0);"
        " INSERT INTO items (id) SELECT g FROM generate_series(1, 4000) g; ANALYZE items",
    )

    def streaming_and_caught_up() -> bool:
        rows = query(
            primary,
            "SELECT state, replay_lsn >= pg_current_wal_lsn() FROM pg_stat_replication",
        )
        return rows == [("streaming", True)]

    _wait_for("the replica to stream and replay everything", streaming_and_caught_up)
    assert query(replica, "SELECT count(*) FROM items") == [(4000,)]
    query(replica, "SELECT pg_wal_replay_pause()")

    # Each batch of 100 rows sleeps 50 ms: 40 batches, 2 s at least without pauses.
    slow = (
        "UPDATE items SET n = n + 1"
        " + length(CASE WHEN id % 100 = 0 THEN pg_sleep(0.05)::text ELSE '' END);"
    )
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / f"{V}_fill.sql").write_text(f"-- @kind: backfill\n-- @batch-size: 100\n{slow}\n")
    (folder / f"{V}_fill_rollback.sql").write_text("SELECT 1;\n")
    [migration] = load_migrations(folder)
    options = BackfillOptions(batch_time_ms=0, max_lag_ms=1000, lag_every_s=0.1)
    events: list[tuple[float, ev.Event]] = []
    outcome: list[BackfillResult | BaseException] = []

    def note(event: ev.Event) -> None:
        events.append((time.monotonic(), event))

    def backfill() -> None:
        try:
            with Target(primary) as target:
                target.prepare()
                outcome.append(run_backfill(target, V, migration, options=options, emit=note))
        except BaseException as exc:  # handed to the test's thread
            outcome.append(exc)

    def batches() -> int:
        return int(query(primary, "SELECT coalesce(max(batches), 0) FROM pgshift.backfill")[0][0])

    def paused() -> list[ev.BackfillPaused]:
        return [e for _, e in events if isinstance(e, ev.BackfillPaused)]

    worker = threading.Thread(target=backfill)
    worker.start()
    try:
        _wait_for("the backfill to pause for the replica", lambda: paused() or outcome)
        assert not outcome, outcome  # it had not finished: it paused part-way
        [first, *_] = paused()
        assert first.reason == "replica-lag"
        assert "lags" in first.detail and "PGSHIFT_BACKFILL_MAX_LAG: 1000 ms" in first.detail
        held = batches()
        assert 0 < held < 40
        time.sleep(3.0)  # replay stays paused: so does the backfill
        assert batches() == held
        assert worker.is_alive()
        assert len(paused()) >= 3  # it keeps checking, once a second
    finally:
        resumed_at = time.monotonic()
        query(replica, "SELECT pg_wal_replay_resume()")
        worker.join(timeout=120)
    assert not worker.is_alive()
    [result] = outcome
    assert isinstance(result, BackfillResult), result
    assert result.batches == 40
    assert query(primary, "SELECT n, count(*) FROM items GROUP BY n") == [(1, 4000)]
    # The batches after the pause ran once replay resumed, not before.
    later = [t for t, e in events if isinstance(e, ev.BackfillFinished)]
    assert later and later[0] > resumed_at

    def replayed() -> bool:
        return query(replica, "SELECT count(*) FROM items WHERE n = 1") == [(4000,)]

    _wait_for("the replica to replay the backfill", replayed)
