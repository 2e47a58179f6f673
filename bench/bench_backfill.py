"""Benchmark of a backfill against the same UPDATE run as one statement, with a latency probe.

    PYTHONPATH=src:bench python bench/bench_backfill.py --server both --rows 1000000 --repeat 3
    PYTHONPATH=src:bench python bench/bench_backfill.py --server pg15 --repeat 8 --diagnose
    PYTHONPATH=src:bench python bench/bench_backfill.py --database-url 'postgresql://...'

Without --database-url it starts the benchmark servers (harness/servers.py: ``pg18`` the
embedded 18, ``pg15`` the system 15), on the disk. It prints its table and writes nothing
to RESULTS.md.

On a scratch database of the given server, one table of N rows (bigint primary key, an int
counter, a text column) is built twice, then, each while a probe thread updates and reads one
random row every few milliseconds on its own connection:

* idle: the probe alone, for its baseline latency;
* single: ``UPDATE t SET n = n + 1, s = upper(s)`` as one statement (what psql would run);
* backfill: the same statement as a `@kind: backfill` migration, run by
  ``pgshift.ops.backfill.run_backfill`` with the default pacing (PGSHIFT_BACKFILL_BATCH_TIME).

Each run starts after a CHECKPOINT (``--fresh-wal`` leaves it out; see _with_probe).
It prints a Markdown table: rows/s of each, and the probe's p50 / p99 / max latency during each.
Issue 20's goals: the backfill at least 50,000 rows/s and at least half the single statement's
rate; the probe's p99 at most 20 ms above idle; no probe statement waiting 1 s longer than idle.
Every row's counter is checked to be exactly 1 afterwards.

``--diagnose`` samples every busy backend's wait event every few ms (harness/waits.py) and,
after each run, prints its checkpoints, WAL volume, WAL segments created, autovacuum and
checkpoint log lines, longest transactions, and for every probe pair over ``--slow-ms`` what
the probe's backend and the others waited on meanwhile. It loads the machine: its runs are
for explaining, not for the table.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psycopg
import psycopg.conninfo
from harness import waits
from psycopg import sql

from pgshift.db.target import Target
from pgshift.ops.backfill import BackfillOptions, run_backfill
from pgshift.source.loader import load_migrations

STATEMENT = "UPDATE {table} SET n = n + 1, s = upper(s)"


class Probe(threading.Thread):
    """Updates then reads one random row every ``every_s``, recording each pair's latency."""

    def __init__(self, url: str, table: str, rows: int, every_s: float = 0.005) -> None:
        super().__init__(daemon=True)
        self.url, self.table, self.rows, self.every_s = url, table, rows, every_s
        self.latencies_ms: list[float] = []
        self.started_at: list[float] = []  # epoch seconds of each pair (--diagnose)
        self.pid = 0
        self.halt = threading.Event()

    def run(self) -> None:
        rng = random.Random(7)
        with psycopg.connect(self.url, autocommit=True) as conn:
            self.pid = conn.info.backend_pid
            update = sql.SQL("UPDATE {} SET s = s WHERE id = %s").format(sql.Identifier(self.table))
            read = sql.SQL("SELECT n FROM {} WHERE id = %s").format(sql.Identifier(self.table))
            while not self.halt.is_set():
                key = rng.randint(1, self.rows)
                self.started_at.append(time.time())
                began = time.perf_counter()
                conn.execute(update, (key,))
                conn.execute(read, (key,))
                self.latencies_ms.append((time.perf_counter() - began) * 1000)
                time.sleep(self.every_s)

    def stop(self) -> list[float]:
        self.halt.set()
        self.join()
        return self.latencies_ms


def _quantiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return (values[0], values[0], values[0]) if values else (0.0, 0.0, 0.0)
    cuts = statistics.quantiles(values, n=100)
    return cuts[49], cuts[98], max(values)


def _build(url: str, table: str, rows: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        name = sql.Identifier(table)
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0, s text)"
            ).format(name)
        )
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (id, s) SELECT g, md5(g::text) FROM generate_series(1, %s) g"
            ).format(name),
            (rows,),
        )
        conn.execute(sql.SQL("VACUUM ANALYZE {}").format(name))


#: --fresh-wal: no CHECKPOINT before each run (see _with_probe).
FRESH_WAL = False


def _with_probe(url: str, table: str, rows: int, work: object) -> tuple[float, list[float]]:
    """Run ``work`` while the probe runs; its duration and the probe's latencies.

    A CHECKPOINT first (unless --fresh-wal) lets the server recycle the WAL segments the
    previous run filled, as a server in steady state has them: without it, a benchmark server
    started minutes ago zero-fills a new 16 MB segment every 16 MB of WAL, and every commit of
    the probe that comes meanwhile waits for it (wait events IO:WalInitWrite, IO:WalInitSync:
    about 50 ms each here), whatever writes the WAL, which measures the server's youth rather
    than the batches' locks.
    """
    if not FRESH_WAL:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CHECKPOINT")
    sampler = _diagnosis_start(url)
    probe = Probe(url, table, rows)
    probe.start()
    time.sleep(0.2)
    began = time.perf_counter()
    work()  # type: ignore[operator]
    took = time.perf_counter() - began
    time.sleep(0.2)
    latencies = probe.stop()
    if sampler is not None:
        _diagnosis_report(url, table, probe, sampler)
    return took, latencies


#: --diagnose: sample wait events during each run and explain the probe's slow statements.
DIAGNOSE = False
#: --diagnose: a probe pair slower than this is explained.
SLOW_MS = 250.0
#: --diagnose: the server log of the server under test (checkpoint and autovacuum lines).
SERVER_LOG: Path | None = None


def _diagnosis_start(url: str) -> waits.WaitSampler | None:
    if not DIAGNOSE:
        return None
    sampler = waits.WaitSampler(
        url,
        checkpoints_before=waits.checkpoints(url),
        wal_before=waits.wal_files(url),
        began=time.time(),
    )
    sampler.start()
    return sampler


def _diagnosis_report(url: str, table: str, probe: Probe, sampler: waits.WaitSampler) -> None:
    """The run's checkpoints, autovacuum lines, and what each slow probe pair waited on."""
    sampler.stop()
    ended = time.time()
    before = sampler.checkpoints_before
    after = waits.checkpoints(url)
    segments, lsn = waits.wal_files(url)
    slow = [
        (at, ms) for at, ms in zip(probe.started_at, probe.latencies_ms, strict=False)
        if ms >= SLOW_MS
    ]  # fmt: skip
    print(
        f"  [{table}] {len(probe.latencies_ms)} probes, {len(slow)} over {SLOW_MS:.0f} ms;"
        f" checkpoints timed +{after[0] - before[0]}, requested +{after[1] - before[1]};"
        f" WAL {(lsn - sampler.wal_before[1]) / 2**20:,.0f} MB,"
        f" segments in pg_wal {sampler.wal_before[0]} -> {segments};"
        f" longest transactions: {'; '.join(sampler.longest_transactions())}",
        flush=True,
    )
    for line in waits.server_log_lines(SERVER_LOG, sampler.began, ended):
        print(line, flush=True)
    for at, ms in slow:
        offset = at - sampler.began
        print(f"  probe at +{offset:.2f} s took {ms:.1f} ms:", flush=True)
        for line in sampler.explain(at, at + ms / 1000, probe.pid):
            print(line, flush=True)


#: PGSHIFT_BACKFILL_BATCH_TIME for the backfill run (--batch-time-ms); 200 is the default.
BATCH_TIME_MS = 200


def bench(server_url: str, rows: int) -> list[tuple[str, float | None, list[float]]]:
    name = f"bench_backfill_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = psycopg.conninfo.make_conninfo(server_url, dbname=name)
    results: list[tuple[str, float | None, list[float]]] = []
    try:
        _build(url, "single", rows)
        _build(url, "batched", rows)
        _, idle = _with_probe(url, "single", rows, lambda: time.sleep(2.0))
        results.append(("idle", None, idle))

        def single() -> None:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(sql.SQL(STATEMENT.format(table="single")))

        took, latencies = _with_probe(url, "single", rows, single)
        results.append(("one statement", rows / took, latencies))

        folder = Path(tempfile.mkdtemp()) / "migrations"
        folder.mkdir()
        version = "20250101000000"
        (folder / f"{version}_fill.sql").write_text(
            "-- @kind: backfill\n" + STATEMENT.format(table="batched") + ";\n"
        )
        (folder / f"{version}_fill_rollback.sql").write_text("SELECT 1;\n")
        [migration] = load_migrations(folder)

        def batched() -> None:
            with Target(url) as target:
                target.prepare()
                options = BackfillOptions(batch_time_ms=BATCH_TIME_MS)
                run_backfill(target, version, migration, options=options)

        took, latencies = _with_probe(url, "batched", rows, batched)
        results.append(("backfill", rows / took, latencies))
        with psycopg.connect(url) as conn:
            for table in ("single", "batched"):
                row = conn.execute(
                    sql.SQL("SELECT count(*) FILTER (WHERE n <> 1) FROM {}").format(
                        sql.Identifier(table)
                    )
                ).fetchone()
                assert row is not None and row[0] == 0, f"{table}: rows not updated exactly once"
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    return results


def _load() -> str:
    """The machine's 1, 5 and 15 minute load averages: the figures mean little without them."""
    import os

    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def _spread(values: list[float], digits: int = 1) -> str:
    """``median (min-max)`` of a measure over the repeats."""
    shown = f"{{:,.{digits}f}}"
    middle = shown.format(statistics.median(values))
    if len(values) < 2:
        return middle
    return f"{middle} ({shown.format(min(values))}-{shown.format(max(values))})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="a server where a scratch database can be made")
    parser.add_argument(
        "--server",
        choices=["embedded", "system", "both", "pg18", "pg15"],
        default="both",
        help="the benchmark servers to start: pg18 is the embedded 18, pg15 the system 15",
    )
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--repeat", type=int, default=1, help="runs per server; medians shown")
    parser.add_argument("--batch-time-ms", type=int, default=200, help="the backfill's aim")
    parser.add_argument(
        "--fresh-wal", action="store_true", help="no CHECKPOINT before each run (_with_probe)"
    )
    parser.add_argument(
        "--diagnose",
        action="store_true",
        help="sample wait events during each run; explain every probe pair over --slow-ms"
        " with the server log's checkpoint and autovacuum lines",
    )
    parser.add_argument("--slow-ms", type=float, default=250.0, help="with --diagnose")
    args = parser.parse_args()
    global BATCH_TIME_MS, FRESH_WAL, DIAGNOSE, SLOW_MS  # noqa: PLW0603 - a script's knobs, set once
    BATCH_TIME_MS = args.batch_time_ms
    FRESH_WAL = args.fresh_wal
    DIAGNOSE = args.diagnose
    SLOW_MS = args.slow_ms
    print(f"load average before: {_load()}", flush=True)
    _repeated(args)
    print(f"load average after: {_load()}", flush=True)


def _targets(args: argparse.Namespace) -> list[tuple[str, str, Path | None]]:
    """(label, URL of its postgres database, its server log when we started it)."""
    if args.database_url:
        return [("given", args.database_url, None)]
    from harness.measure import work_folder
    from harness.servers import SystemServer, start_servers

    which = {"pg18": "embedded", "pg15": "system"}.get(args.server, args.server)
    # On the disk (not tmpfs like the other benchmarks): WAL and checkpoint costs are the
    # point here, and the earlier figures in RESULTS.md were taken on the disk too.
    work = work_folder(Path(tempfile.gettempdir()), keep=False)
    targets: list[tuple[str, str, Path | None]] = []
    for server in start_servers(which, work):
        log = server.log if isinstance(server, SystemServer) else work / "pgdata" / "log"
        targets.append((server.label(), server.url("postgres"), log))
    return targets


def _repeated(args: argparse.Namespace) -> None:
    """Each server ``--repeat`` times; one row per run kind: median (min-max) of the runs."""
    global SERVER_LOG  # noqa: PLW0603 - the log of the server under test, for --diagnose
    targets = _targets(args)
    print("| server | rows | run | runs | rows/s | probe p50 ms | probe p99 ms | probe max ms |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for label, url, log in targets:
        SERVER_LOG = log
        if DIAGNOSE and log is not None:
            waits.enable_logging(url)
        for rows in args.rows:
            measured: dict[str, list[tuple[float | None, float, float, float]]] = {}
            for _ in range(args.repeat):
                for run, rate, latencies in bench(url, rows):
                    measured.setdefault(run, []).append((rate, *_quantiles(latencies)))
            for run, runs in measured.items():
                rates = [r[0] for r in runs if r[0] is not None]
                shown = _spread(rates, 0) if rates else "-"
                p50, p99, worst = ([r[i] for r in runs] for i in (1, 2, 3))
                print(
                    f"| {label} | {rows:,} | {run} | {len(runs)} | {shown} | {_spread(p50)}"
                    f" | {_spread(p99)} | {_spread(worst)} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
