"""Benchmark of `pgshift fleet up` / `fleet status` over many tenant schemas and databases.

    python bench/bench_fleet.py --tenants 1000 --migrations 20 --concurrency 1 2 4 8 16

On the embedded PostgreSQL 18 (fsync on, the server's defaults), with T tenant schemas in one
database and M small generated migrations (a table, an index, a few rows each): the end-to-end
time of `pgshift fleet up --skip-backup -q` (a fresh process, interpreter start included) per
--concurrency, as migrations/s; then, over the migrated fleet, a no-op `fleet up` and
`fleet status -q`; then the same workload over D separate databases. Each timed figure is the
median of --runs runs (a fresh fleet each for `up`), with its spread. It replaces the section
"fleet throughput" of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

from harness.measure import Quiet, Series, default_work_parent, pgshift_script, run, work_folder
from harness.migrations import generate
from harness.report import RESULTS, command_line, heading, machine, write_section
from harness.servers import Server, start_servers

SECTION = "fleet throughput"
TARGET_PER_S = 600.0

warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


def _tenant_fleet(server: Server, work: Path, tenants: int) -> tuple[str, Path]:
    db = server.fresh_db("fleet")
    server.admin("; ".join(f"CREATE SCHEMA t{i:04d}" for i in range(tenants)), dbname=db)
    url = server.url(db)
    path = work / f"{db}.toml"
    path.write_text(
        "".join(
            f'[[target]]\nname = "t{i:04d}"\nurl = "{url}"\nschema = "t{i:04d}"\n'
            for i in range(tenants)
        ),
        encoding="utf-8",
    )
    return db, path


def _database_fleet(server: Server, work: Path, count: int) -> tuple[list[str], Path]:
    names = [server.fresh_db(f"fleetdb{i}") for i in range(count)]
    path = work / "databases.toml"
    path.write_text(
        "".join(f'[[target]]\nname = "{n}"\nurl = "{server.url(n)}"\n' for n in names),
        encoding="utf-8",
    )
    return names, path


def _fleet(script: Path, folder: Path, action: str, targets: Path, *extra: str) -> float:
    cmd = [
        str(script), "fleet", action, "--targets", str(targets), "--dir", str(folder), "-q",
        *(["--yes"] if action == "up" else []), *extra,
    ]  # fmt: skip
    started = time.perf_counter()
    proc = run(cmd, folder.parent)
    spent = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd[:3])} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    return spent


def _check(server: Server, db: str, history: str, migrations: int) -> None:
    rows = server.admin(f'SELECT count(*) FROM "{history}".applied', dbname=db)
    if rows[0][0] != migrations:
        sys.exit(f"bench: {db}.{history} has {rows[0][0]} applied rows, not {migrations}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--migrations", type=int, default=20)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--sweep-tenants", type=int, help="tenants for the concurrency sweep")
    parser.add_argument("--databases", type=int, default=50)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    script = pgshift_script()
    work = work_folder(default_work_parent(), keep=args.keep)
    folder, _ = generate(work, args.migrations)
    (server,) = start_servers("embedded", work)
    quiet = Quiet()
    m = args.migrations
    sweep_t = args.sweep_tenants or args.tenants
    lines = [
        *heading(SECTION, command_line("bench_fleet.py")),
        f"Machine: {machine()}.",
        f"Server: {server.describe()}.",
        "",
        f"`fleet up --skip-backup -q` of {m} migrations to {sweep_t} tenant schemas of one"
        " database (a fresh process; end to end):",
        "",
        "| --concurrency | time | migrations/s | spread |",
        "|---|---|---|---|",
    ]
    best = 0.0
    for c in args.concurrency:
        series = Series()
        for _ in range(args.runs):
            db, targets = _tenant_fleet(server, work, sweep_t)
            quiet.settle()
            series.add(_fleet(script, folder, "up", targets, "--concurrency", str(c)))
            _check(server, db, "t0000_pgshift", m)
            server.drop_db(db)
        rate = sweep_t * m / series.median
        best = max(best, rate)
        lines.append(f"| {c} | {series.s()} | {rate:.0f} | {series.spread:.0%} |")
        print(lines[-1], flush=True)

    db, targets = _tenant_fleet(server, work, args.tenants)
    first = _fleet(script, folder, "up", targets, "--concurrency", str(max(args.concurrency)))
    noop, status = Series(), Series()
    for _ in range(max(3, args.runs)):
        quiet.settle()
        noop.add(_fleet(script, folder, "up", targets))
        status.add(_fleet(script, folder, "status", targets))
    lines += [
        "",
        f"Over {args.tenants} tenants: the first `fleet up` (concurrency"
        f" {max(args.concurrency)}) took {first:.1f} s"
        f" ({args.tenants * m / first:.0f} migrations/s); no-op `fleet up` {noop.s()},"
        f" `fleet status -q` {status.s()} (default concurrency 8; target under 2 s each).",
    ]
    print(lines[-1], flush=True)
    server.drop_db(db)

    names, targets = _database_fleet(server, work, args.databases)
    quiet.settle()
    spent = _fleet(script, folder, "up", targets, "--concurrency", "8")
    for name in names:
        _check(server, name, "pgshift", m)
    noop_db = _fleet(script, folder, "up", targets)
    status_db = _fleet(script, folder, "status", targets)
    lines += [
        "",
        f"{args.databases} separate databases x {m} migrations, concurrency 8: {spent:.1f} s"
        f" ({args.databases * m / spent:.0f} migrations/s); no-op `fleet up` {noop_db:.2f} s,"
        f" `fleet status` {status_db:.2f} s.",
        "",
        f"Best tenant throughput {best:.0f} migrations/s against the target of"
        f" {TARGET_PER_S:.0f}. {quiet.summary()}.",
    ]
    print("\n".join(lines[-3:]), flush=True)
    if not args.no_write:
        write_section(RESULTS, SECTION, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
