"""Benchmark of what the application suffers while `pgshift up` waits for a lock.

    python bench/bench_lock_stall.py --runs 3

The lock-queue outage: an `ALTER TABLE` needs ACCESS EXCLUSIVE, so behind a long transaction
that merely reads the table it queues, and while it is queued every new reader of the table
queues behind it. pgshift's answer is a short lock_timeout with retries and backoff; this
measures what that leaves the application, against plain psql (no lock_timeout).

Per run, on a fresh database of each server (embedded PostgreSQL 18, system PostgreSQL 15 when
present), with a table ``t`` of ``--rows`` rows:

1. a probe session runs ``SELECT count(*) FROM t`` every ``--interval`` seconds, each timed on
   its own, for the whole run (one second before the blocker starts, half a second after the
   migration ended);
2. a blocker session runs ``BEGIN; LOCK TABLE t IN ACCESS SHARE MODE`` and holds it for
   ``--hold`` seconds;
3. right after the blocker took its lock, ``pgshift up --yes --skip-backup`` applies one
   migration, ``ALTER TABLE t ADD COLUMN c int`` (or, for the reference,
   ``psql -c 'ALTER TABLE t ADD COLUMN c int'``).

A probe's stall is its latency. Reported per contender: the max single stall, the sum of the
stalls of the probes started during the blocker's lifetime, the migration attempts (1 + the
``lock_retry`` rows in ``pgshift.log``) and when the migration finished after the blocker
ended; medians and spread over the runs. Targets: every stall under pgshift's lock_timeout, all
stalls together under 2 s.

pgshift runs with the settings it has: ``PGSHIFT_*`` variables of the caller's environment are
passed through, and the effective values are read from ``pgshift config --json``, never assumed.
It replaces the section "lock stall behind a long reader" of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.measure import (
    Quiet,
    Series,
    clean_env,
    run,
)
from harness.options import add_common, start
from harness.report import command_line, heading, machine, write_section
from harness.servers import Server

SECTION = "lock stall behind a long reader"
TOTAL_TARGET_S = 2.0
ALTER = "ALTER TABLE t ADD COLUMN c int"
# The runner settings under test come from the caller; everything else stays cleaned.
PASS_THROUGH = ("PGSHIFT_", "DB_MIGRATION_TIMEOUT", "DB_HEALTH_")
SETTING_WORDS = ("LOCK", "RETRY", "BACKOFF", "DB_MIGRATION_TIMEOUT", "DB_HEALTH_CHECK_ENABLED")

warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")  # platformdirs, as root


@dataclass(frozen=True)
class Probe:
    """One ``SELECT count(*) FROM t``: when it started and how long it took (seconds)."""

    start: float
    latency: float


@dataclass
class StallRun:
    """One run of one contender; times are ``perf_counter`` seconds."""

    contender: str
    blocker_start: float
    blocker_end: float
    migration_end: float
    attempts: int | None
    probes: list[Probe] = field(default_factory=list)

    def during_blocker(self) -> list[Probe]:
        return [p for p in self.probes if self.blocker_start <= p.start < self.blocker_end]

    @property
    def max_stall(self) -> float:
        return max((p.latency for p in self.probes), default=0.0)

    @property
    def sum_stall(self) -> float:
        return sum(p.latency for p in self.during_blocker())

    @property
    def finished_after(self) -> float:
        return self.migration_end - self.blocker_end

    @property
    def baseline(self) -> float:
        before = [p.latency for p in self.probes if p.start < self.blocker_start]
        return statistics.median(before) if before else 0.0

    def long_stalls(self, above: float = 0.05) -> str:
        """The stalls over ``above`` seconds, in order, e.g. ``1.93 1.95 1.97 s``."""
        long = [f"{p.latency:.2f}" for p in self.probes if p.latency > above]
        return (" ".join(long) + " s") if long else "none"


class Prober(threading.Thread):
    """The application: one session reading ``t`` every ``interval`` seconds, each timed."""

    def __init__(self, url: str, interval: float) -> None:
        super().__init__(daemon=True)
        self.url, self.interval = url, interval
        self.probes: list[Probe] = []
        self.stop = threading.Event()
        self.ready = threading.Event()

    def run(self) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("SELECT count(*) FROM t")  # connect and warm up outside the record
            self.ready.set()
            while not self.stop.is_set():
                started = time.perf_counter()
                conn.execute("SELECT count(*) FROM t").fetchone()
                self.probes.append(Probe(started, time.perf_counter() - started))
                time.sleep(max(0.0, started + self.interval - time.perf_counter()))


def write_project(work: Path) -> Path:
    """One migration adding a column to ``t``, with its header and a rollback file."""
    folder = work / "migrations_lock_stall"
    if folder.exists():
        return folder
    folder.mkdir()
    stem = "20240101000000_add_c_to_t"
    head = "-- Description: Add column c to t\n-- Created: 2024-01-01\n-- Version: 20240101000000\n"
    (folder / f"{stem}.sql").write_text(f"-- Migration: {stem}.sql\n{head}\n{ALTER};\n")
    (folder / f"{stem}_rollback.sql").write_text(
        f"-- Rollback: {stem}_rollback.sql\n{head}\nALTER TABLE t DROP COLUMN c;\n"
    )
    return folder


def pgshift_settings(pgshift: Path, folder: Path, url: str, work: Path) -> dict[str, str]:
    """The lock and retry settings pgshift will use here, as `pgshift config --json` says."""
    env = clean_env(PASS_THROUGH)
    cmd = [str(pgshift), "config", "--json", "--dir", str(folder), "--database-url", url]
    found = json.loads(run(cmd, work, env).stdout)
    return {
        key: f"{entry['value']} ({entry['source']})"
        for key, entry in found.items()
        if any(word in key for word in SETTING_WORDS)
    }


def one_run(
    server: Server,
    contender: str,
    cmd_for: dict[str, list[str]],
    work: Path,
    args: argparse.Namespace,
) -> StallRun:
    """Probe, blocker and migration on a fresh database, as the module docstring describes."""
    import psycopg

    db = server.fresh_db(f"stall_{contender}")
    url = server.url(db)
    server.admin(
        "CREATE TABLE t (id bigint PRIMARY KEY, payload text NOT NULL);"
        f" INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, {args.rows}) g;"
        " ANALYZE t",
        dbname=db,
    )
    prober = Prober(url, args.interval)
    prober.start()
    prober.ready.wait(10)
    time.sleep(1.0)  # the baseline
    cmd = [*cmd_for[contender], url]
    with psycopg.connect(url) as blocker:
        blocker.execute("LOCK TABLE t IN ACCESS SHARE MODE")  # psycopg opened the transaction
        blocker_start = time.perf_counter()
        proc = subprocess.Popen(
            cmd,
            cwd=work,
            env=clean_env(PASS_THROUGH),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(max(0.0, blocker_start + args.hold - time.perf_counter()))
        blocker.commit()
        blocker_end = time.perf_counter()
    try:
        stdout, stderr = proc.communicate(timeout=args.migration_timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
    migration_end = time.perf_counter()
    time.sleep(0.5)
    prober.stop.set()
    prober.join(30)
    if proc.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd)} exited {proc.returncode}\n{stdout}\n{stderr}")
    added = server.admin(
        "SELECT count(*) FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'c'",
        dbname=db,
    )[0][0]
    if added != 1:
        sys.exit(f"bench: {contender} exited 0 but t has no column c in {db}")
    attempts = None
    if contender == "pgshift":
        retries = server.admin(
            "SELECT count(*) FROM pgshift.log WHERE event = 'lock_retry'", dbname=db
        )[0][0]
        attempts = int(retries) + 1
    server.drop_db(db)
    result = StallRun(contender, blocker_start, blocker_end, migration_end, attempts)
    result.probes = prober.probes
    return result


@dataclass
class Summary:
    """The runs of one contender on one server."""

    server: str
    contender: str
    runs: list[StallRun]

    def series(self, pick: str) -> Series:
        return Series([float(getattr(r, pick) or 0) for r in self.runs])


def render(
    command: str,
    servers: list[str],
    settings: dict[str, str],
    summaries: list[Summary],
    args: argparse.Namespace,
    quiet: Quiet,
    took: float,
) -> str:
    out = heading(SECTION, command)
    add = out.append
    add(f"- machine: {machine()}")
    for line in servers:
        add(f"- server: {line}")
    shown = ", ".join(f"{k} = {v}" for k, v in settings.items())
    add(f"- pgshift settings (`pgshift config --json`): {shown}")
    add(
        f"- table t of {args.rows} rows; the blocker holds ACCESS SHARE on t for {args.hold:g} s;"
        f" the probe reads t every {args.interval * 1000:.0f} ms; the reference is"
        f" `psql -c '{ALTER}'` with no lock_timeout; a fresh database per run"
    )
    add(f"- load: {quiet.summary()}")
    add(
        f"- the whole benchmark took {took:.0f} s; median (min-max) over the runs; a stall is a"
        " probe's latency, the sum covers probes started while the blocker held its lock\n"
    )
    lock_timeout = _lock_timeout_s(settings)
    add(
        "| server | contender | runs | max stall | sum of stalls | attempts | finished after"
        " blocker ended | target |"
    )
    add("|---|---|---:|---|---|---|---|---|")
    for s in summaries:
        worst, total = s.series("max_stall"), s.series("sum_stall")
        attempts = s.series("attempts").plain() if s.contender == "pgshift" else "1"
        verdict = ""
        if s.contender == "pgshift" and lock_timeout is not None:
            each = "met" if max(worst.values) < lock_timeout else "**missed**"
            together = "met" if max(total.values) < TOTAL_TARGET_S else "**missed**"
            verdict = f"each < {lock_timeout:g} s: {each}; sum < {TOTAL_TARGET_S:g} s: {together}"
        add(
            f"| {s.server} | {s.contender} | {len(s.runs)} | {worst.s()} | {total.s()} |"
            f" {attempts} | {s.series('finished_after').s()} | {verdict} |"
        )
    add("")
    add("Every probe over 50 ms, per run (the baseline probe takes the median shown):\n")
    add("| server | contender | run | baseline probe | probes | stalls over 50 ms |")
    add("|---|---|---:|---:|---:|---|")
    for s in summaries:
        for i, r in enumerate(s.runs, 1):
            add(
                f"| {s.server} | {s.contender} | {i} | {r.baseline * 1000:.1f} ms |"
                f" {len(r.probes)} | {r.long_stalls()} |"
            )
    add("")
    return "\n".join(out) + "\n"


def _lock_timeout_s(settings: dict[str, str]) -> float | None:
    raw = settings.get("PGSHIFT_LOCK_TIMEOUT", "").split(" ", 1)[0]
    return int(raw) / 1000 if raw.isdigit() else None


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--runs", type=int, default=3, help="runs per contender and server")
    p.add_argument("--hold", type=float, default=8.0, help="seconds the blocker holds its lock")
    p.add_argument("--interval", type=float, default=0.1, help="seconds between probe starts")
    p.add_argument("--rows", type=int, default=10_000, help="rows in t")
    p.add_argument("--migration-timeout", type=float, default=180, help="seconds, then kill")
    p.add_argument("--skip-psql", action="store_true", help="no psql reference runs")
    add_common(p, idle_below=0.5, idle_wait=10, idle_budget=60)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    begun = start(args)
    began, pgshift, work, servers = begun.began, begun.pgshift, begun.work, begun.servers
    folder = write_project(work)
    settings = pgshift_settings(pgshift, folder, servers[0].url("postgres"), work)
    print(f"bench: pgshift settings {settings}", flush=True)
    quiet = begun.quiet
    contenders = {
        "pgshift": [str(pgshift), "up", "--yes", "-q", "--skip-backup", "--dir", str(folder)],
        "psql": [str(servers[0].psql), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", ALTER, "-d"],
    }
    contenders["pgshift"].append("--database-url")
    names = ["pgshift"] if args.skip_psql else ["pgshift", "psql"]
    summaries: list[Summary] = []
    for server in servers:
        per = {name: Summary(server.label(), name, []) for name in names}
        psql = [str(server.psql), *contenders["psql"][1:]]
        cmd_for = {**contenders, "psql": psql}
        for i in range(args.runs):
            for name in names if i % 2 == 0 else names[::-1]:
                quiet.settle()
                r = one_run(server, name, cmd_for, work, args)
                per[name].runs.append(r)
                attempts = f", {r.attempts} attempts" if r.attempts else ""
                print(
                    f"  {server.label()} {name:<8} run {i + 1}: max stall {r.max_stall:.3f} s,"
                    f" sum {r.sum_stall:.3f} s{attempts}, finished {r.finished_after:+.3f} s"
                    f" after the blocker; stalls {r.long_stalls()}",
                    flush=True,
                )
        summaries.extend(per.values())
    described = [s.describe() for s in servers]
    took = time.perf_counter() - began
    section = render(
        command_line("bench_lock_stall.py"), described, settings, summaries, args, quiet, took
    )
    print("\n" + section)
    if not args.no_write:
        write_section(args.results, SECTION, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
