"""Benchmark of `pgshift up` against the psql floor, on the embedded and the system PostgreSQL.

    python bench/bench_up.py --sizes 100 1000 --runs 3

For each server (the embedded PostgreSQL 18 and, when installed, the system PostgreSQL 15) and
each N, runs of `pgshift up --yes -q --skip-backup` of N generated migrations (a table, an index
and 10 rows each) alternate with the floor: ONE `psql` process running the same SQL with
BEGIN/COMMIT around each migration; with ``--dbmate PATH``, dbmate's `up` of the same SQL as a
third contender (each migration in its own transaction, its history in schema_migrations).
Every run gets a fresh database and is checked afterwards.
It reports the median, min and max wall times and the ratio of the medians, beside the targets
(at most 1.5x at N = 100, at most 1.1x at N = 1000), and replaces the section
"up throughput vs the psql floor" of bench/RESULTS.md.

The question it answers is what pgshift's safety (history, lock, lint, timeouts) costs over the
cheapest way to run the same SQL; fsync stays on, as on a real deployment.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from harness.measure import (
    Quiet,
    Series,
    timed,
)
from harness.migrations import BASE_VERSION, check_applied, generate, migration_sql, up_args
from harness.options import add_common, start
from harness.report import command_line, heading, machine, write_section
from harness.servers import Server

SECTION = "up throughput vs the psql floor"
TARGETS = {100: 1.5, 1000: 1.1}  # N -> the most pgshift / floor may be

warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")  # platformdirs, as root


@dataclass
class SizeResult:
    """pgshift and the floor at one N on one server."""

    server: str
    count: int
    pgshift: Series = field(default_factory=Series)
    floor: Series = field(default_factory=Series)
    dbmate: Series = field(default_factory=Series)
    #: pgshift / floor of each run pair (the two ran back to back), the steadier ratio here
    pairs: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return self.pgshift.median / self.floor.median

    def verdict(self) -> str:
        target = TARGETS.get(self.count)
        if target is None:
            return ""
        met = "met" if self.ratio <= target else "**missed**"
        return f"{met} (<= {target}x)"


def dbmate_folder(work: Path, count: int) -> Path:
    """The generated migrations in dbmate's layout: the same SQL, `-- migrate:up/down`."""
    folder = work / f"dbmate_{count}"
    if folder.exists():
        return folder
    folder.mkdir(parents=True)
    for i in range(count):
        version = f"{BASE_VERSION + dt.timedelta(seconds=i):%Y%m%d%H%M%S}"
        (folder / f"{version}_create_bench_table_{i:05d}.sql").write_text(
            f"-- migrate:up\n{migration_sql(i)}\n-- migrate:down\nDROP TABLE bench_{i:05d};\n",
            encoding="utf-8",
        )
    return folder


def dbmate_url(url: str) -> str:
    """A libpq URL in dbmate's spelling (its driver takes the socket folder as ``socket``)."""
    parts = urlsplit(url)
    query = [("socket" if k == "host" else k, v) for k, v in parse_qsl(parts.query)]
    query.append(("sslmode", "disable"))
    return urlunsplit(("postgres", parts.netloc, parts.path, urlencode(query), ""))


def throughput(
    server: Server,
    pgshift: Path,
    work: Path,
    count: int,
    runs: int,
    warmup: int,
    quiet: Quiet,
    dbmate: Path | None = None,
) -> SizeResult:
    """Alternate pgshift, the floor (and dbmate) ``warmup + runs`` times, each on a fresh
    database."""
    folder, sql_file = generate(work, count)
    dbmate_dir = dbmate_folder(work, count) if dbmate else None
    result = SizeResult(server.label(), count)

    def command(kind: str, url: str) -> list[str]:
        if kind == "pgshift":
            return [str(pgshift), *up_args(folder, url)]
        if kind == "dbmate":
            return [str(dbmate), "--url", dbmate_url(url), "--migrations-dir", str(dbmate_dir),
                    "--no-dump-schema", "up"]  # fmt: skip
        return [str(server.psql), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f",
                str(sql_file)]  # fmt: skip

    def one(kind: str, keep: bool) -> float:
        db = server.fresh_db(f"{kind}_{count}")
        if keep:
            quiet.settle()
        elapsed = timed(command(kind, server.url(db)), work)
        check_applied(server, db, count, history=kind == "pgshift")
        server.drop_db(db)
        if keep:
            getattr(result, kind).add(elapsed)
        busy = f" (CPUs {quiet.busy[-1]:.0%} busy before)" if keep and quiet.busy else ""
        print(
            f"  {result.server} N={count:<5} {kind:<8} {'run' if keep else 'warm-up':<7}"
            f" {elapsed:.3f} s{busy}",
            flush=True,
        )
        return elapsed

    kinds = ["pgshift", "floor"] + (["dbmate"] if dbmate else [])
    for i in range(warmup + runs):
        # Rotate who goes first, so a slow drift of the machine hits each the same way.
        order = kinds[i % len(kinds) :] + kinds[: i % len(kinds)]
        took = {kind: one(kind, keep=i >= warmup) for kind in order}
        if i >= warmup:
            result.pairs.append(took["pgshift"] / took["floor"])
    return result


def _fit(lo: Series, hi: Series, n_lo: int, n_hi: int) -> tuple[float, float]:
    """(fixed seconds, seconds per migration) of the straight line through two sizes."""
    slope = (hi.median - lo.median) / (n_hi - n_lo)
    return lo.median - slope * n_lo, slope


def render(
    command: str, servers: list[str], results: list[SizeResult], quiet: Quiet, took: float
) -> str:
    out = heading(SECTION, command)
    add = out.append
    add(f"- machine: {machine()}")
    for line in servers:
        add(f"- server: {line}")
    add(
        "- each migration: CREATE TABLE (3 columns), CREATE INDEX, one INSERT of 10 rows, with a"
        " pgshift header and a rollback file; the floor is ONE `psql -X -q -v ON_ERROR_STOP=1"
        " -f all.sql` (the server's own psql) with BEGIN/COMMIT around each migration; a fresh"
        " database for every run; pgshift and the floor alternate, and which goes first"
        " alternates too; data and migration files on tmpfs, fsync on"
    )
    add(f"- load: {quiet.summary()}")
    add(f"- the whole benchmark took {took:.0f} s; spread = (max - min) / median\n")
    add(
        "| server | N | runs | pgshift up | floor (psql) | dbmate | pgshift / floor (medians)"
        " | pgshift / floor, pair by pair: median (min-max) | pgshift / dbmate"
        " | spread pgshift / floor | extra per migration | target |"
    )
    add("|---|---:|---:|---|---|---|---:|---|---:|---|---:|---|")
    for r in results:
        extra = (r.pgshift.median - r.floor.median) / r.count * 1000
        pairs = (
            f"{statistics.median(r.pairs):.2f}x ({min(r.pairs):.2f}-{max(r.pairs):.2f})"
            if r.pairs
            else "-"
        )
        dbmate = r.dbmate.s() if r.dbmate.values else "-"
        versus = f"{r.pgshift.median / r.dbmate.median:.2f}x" if r.dbmate.values else "-"
        add(
            f"| {r.server} | {r.count} | {len(r.pgshift.values)} | {r.pgshift.s()} |"
            f" {r.floor.s()} | {dbmate} | **{r.ratio:.2f}x** | {pairs} | {versus} |"
            f" {r.pgshift.spread:.0%} / {r.floor.spread:.0%} | {extra:+.2f} ms | {r.verdict()} |"
        )
    add("")
    for name in dict.fromkeys(r.server for r in results):
        mine = sorted((r for r in results if r.server == name), key=lambda r: r.count)
        if len(mine) < 2:
            continue
        lo, hi = mine[0], mine[-1]
        fp, sp = _fit(lo.pgshift, hi.pgshift, lo.count, hi.count)
        ff, sf = _fit(lo.floor, hi.floor, lo.count, hi.count)
        add(
            f"{name}, straight line through N = {lo.count} and {hi.count}: pgshift"
            f" {fp * 1000:.0f} ms + {sp * 1000:.2f} ms per migration; floor {ff * 1000:.0f} ms +"
            f" {sf * 1000:.2f} ms per migration.\n"
        )
    return "\n".join(out) + "\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 1000], help="values of N")
    p.add_argument("--runs", type=int, default=3, help="timed runs per contender, N and server")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs per contender and N")
    p.add_argument("--dbmate", type=Path, help="a dbmate binary: a third contender")
    add_common(p, idle_below=0.25, idle_wait=20, idle_budget=150)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    begun = start(args)
    began, pgshift, work, servers, quiet = (
        begun.began, begun.pgshift, begun.work, begun.servers, begun.quiet,
    )  # fmt: skip
    results = [
        throughput(server, pgshift, work, count, args.runs, args.warmup, quiet, args.dbmate)
        for server in servers
        for count in sorted(set(args.sizes))
    ]
    described = [s.describe() for s in servers]
    took = time.perf_counter() - began
    section = render(command_line("bench_up.py"), described, results, quiet, took)
    print("\n" + section)
    if not args.no_write:
        write_section(args.results, SECTION, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
