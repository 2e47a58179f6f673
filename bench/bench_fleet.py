"""Benchmark of `pgshift fleet up` / `fleet status` over tenant schemas, beside one serial psql.

    python bench/bench_fleet.py --tenants 200 --migrations 10 --concurrency 8 --runs 3 --databases 0

Per server (`--server embedded|system|both`, fsync on), with T tenant schemas in one database
and M small generated migrations (a table, an index and 10 rows each): for each --concurrency,
--runs pairs of
* `pgshift fleet up --skip-backup -q --yes` (a fresh process, interpreter start included), and
* the reference: ONE `psql -X -q -v ON_ERROR_STOP=1 -f` of the same T x M migrations, each in
  BEGIN/COMMIT, a `SET search_path` before each tenant's, and
* what the server can do concurrently with nothing else: --concurrency such psql at once, the
  tenants dealt among them (no history, no lock, no tool's sessions), and
* the floor of any tool that keeps a history of pgshift's shape per tenant: the same psql at
  once, each tenant first creating pgshift's history tables (pgshift's own schema files, in one
  transaction) and each migration writing its applied row and one log row in its transaction
  (no lock, no reads, no client work),
each on its own fresh database with the T schemas, in turn (the order alternates), all checked
afterwards. Issue 18's target: the fleet at most 0.80x the serial psql. Then, over
a migrated fleet of --tenants, the no-op `fleet up` and `fleet status -q` (target: under
0.5 s each); then, unless `--databases 0`, the same workload over D separate databases.
Reports medians (min-max), spread, the CPUs' business and load average before each run, and
the ratio of each pair. It replaces the section "fleet up vs one serial psql" of RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.measure import Quiet, Series, run
from harness.migrations import generate, migration_sql
from harness.options import add_common, start
from harness.report import command_line, heading, machine, write_section
from harness.servers import Server, server_cpu_s

SECTION = "fleet up vs one serial psql"
TARGET_RATIO = 0.80  # fleet up / serial psql, issue 18
TARGET_NOOP_S = 0.5  # no-op fleet up and fleet status, issue 18

warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


def _schemas(tenants: int) -> list[str]:
    return [f"t{i:04d}" for i in range(tenants)]


def _tenant_db(server: Server, label: str, tenants: int) -> str:
    """A fresh database holding the T empty tenant schemas (the same for both contenders)."""
    db = server.fresh_db(label)
    server.admin("; ".join(f"CREATE SCHEMA {s}" for s in _schemas(tenants)), dbname=db)
    server.admin("CHECKPOINT")
    return db


def _targets_file(work: Path, server: Server, db: str, tenants: int) -> Path:
    url = server.url(db)
    path = work / f"{db}.toml"
    path.write_text(
        "".join(
            f'[[target]]\nname = "{s}"\nurl = "{url}"\nschema = "{s}"\n' for s in _schemas(tenants)
        ),
        encoding="utf-8",
    )
    return path


def _psql_file(work: Path, floor_sql: Path, tenants: int, migrations: int) -> Path:
    """The serial reference's one file: per tenant, `SET search_path` then the M migrations."""
    path = work / f"fleet_floor_{tenants}x{migrations}.sql"
    if not path.exists():
        body = floor_sql.read_text(encoding="utf-8")
        path.write_text(
            "".join(f"SET search_path TO {s};\n{body}" for s in _schemas(tenants)),
            encoding="utf-8",
        )
    return path


def _psql_shares(work: Path, floor_sql: Path, tenants: int, migrations: int, n: int) -> list[Path]:
    """The tenants dealt to ``n`` files, one per concurrent psql (the concurrent reference)."""
    body = floor_sql.read_text(encoding="utf-8")
    paths = []
    for k in range(n):
        path = work / f"fleet_floor_{tenants}x{migrations}_{k + 1}of{n}.sql"
        if not path.exists():
            share = _schemas(tenants)[k::n]
            path.write_text("".join(f"SET search_path TO {s};\n{body}" for s in share))
        paths.append(path)
    return paths


def _history_shares(work: Path, tenants: int, migrations: int, n: int) -> list[Path]:
    """The concurrent reference with a history of pgshift's shape per tenant (the module's
    docstring): what any tool keeping that history must have the server do, and nothing else."""
    from pgshift.db.store import schema_files

    created = "".join(f"{body}\n;\nINSERT INTO schema_version VALUES ({number}, '{name}');\n"
                      for number, name, body in schema_files())  # fmt: skip
    paths = []
    for k in range(n):
        path = work / f"fleet_history_{tenants}x{migrations}_{k + 1}of{n}.sql"
        if not path.exists():
            parts = []
            for i, tenant in enumerate(_schemas(tenants)[k::n]):
                history = f"{tenant}_pgshift"
                run_id = f"00000000-0000-4000-8000-{k:06d}{i:06d}"
                parts.append(
                    f"BEGIN;\nCREATE SCHEMA {history};\nSET LOCAL search_path TO {history};\n"
                    "CREATE TABLE schema_version (version integer PRIMARY KEY, name text NOT NULL,"
                    f" applied_at timestamptz NOT NULL DEFAULT now());\n{created}COMMIT;\n"
                    f"SET search_path TO {tenant};\n"
                )
                for m in range(migrations):
                    parts.append(
                        f"BEGIN;\n{migration_sql(m)}"
                        f"INSERT INTO {history}.applied (version, description, checksum,"
                        f" duration_ms, applied_by, run_id) VALUES ('{m:014d}', 'migration {m}',"
                        f" '{'c' * 64}', 1, 'bench', '{run_id}');\n"
                        f"INSERT INTO {history}.log (run_id, event, version) VALUES"
                        f" ('{run_id}', 'migration_applied', '{m:014d}');\nCOMMIT;\n"
                    )
            path.write_text("".join(parts), encoding="utf-8")
        paths.append(path)
    return paths


def _psql_at_once(server: Server, db: str, files: Sequence[Path]) -> float:
    """One psql per file, all at once: what the server does with the same migrations run
    concurrently and nothing else (no history, no lock)."""
    started = time.perf_counter()
    psql = [str(server.psql), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", server.url(db), "-f"]
    procs = [subprocess.Popen([*psql, str(f)], stdout=subprocess.DEVNULL) for f in files]
    if any(p.wait() != 0 for p in procs):
        sys.exit(f"bench: a concurrent psql failed on {db}")
    return time.perf_counter() - started


def _fleet(script: Path, folder: Path, action: str, targets: Path, *extra: str) -> float:
    cmd = [
        str(script), "fleet", action, "--targets", str(targets), "--dir", str(folder), "-q",
        *(["--yes", "--skip-backup"] if action == "up" else []), *extra,
    ]  # fmt: skip
    started = time.perf_counter()
    run(cmd, folder.parent)
    return time.perf_counter() - started


def _psql(server: Server, db: str, sql_file: Path) -> float:
    cmd = [str(server.psql), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", server.url(db), "-f",
           str(sql_file)]  # fmt: skip
    started = time.perf_counter()
    run(cmd, sql_file.parent)
    return time.perf_counter() - started


def _check(server: Server, db: str, tenants: int, migrations: int, *, history: bool) -> None:
    """Both contenders must have done all the work: T x M tables (and history rows)."""
    tables = server.admin(
        "SELECT count(*) FROM pg_tables WHERE schemaname ~ '^t[0-9]{4}$'"
        " AND tablename LIKE 'bench\\_%'",
        dbname=db,
    )[0][0]
    if tables != tenants * migrations:
        sys.exit(f"bench: {db} has {tables} bench tables, not {tenants * migrations}")
    if history:
        last = _schemas(tenants)[-1]
        for schema in ("t0000_pgshift", f"{last}_pgshift"):
            rows = server.admin(f'SELECT count(*) FROM "{schema}".applied', dbname=db)[0][0]
            if rows != migrations:
                sys.exit(f"bench: {db}.{schema} has {rows} applied rows, not {migrations}")


@dataclass
class Pairs:
    """The fleet and the serial psql at one --concurrency on one server, run pair by pair."""

    concurrency: int
    fleet: Series = field(default_factory=Series)
    psql: Series = field(default_factory=Series)
    #: The same migrations by --concurrency psql processes at once (no history, no lock).
    at_once: Series = field(default_factory=Series)
    #: The same, each tenant keeping a history of pgshift's shape (_history_shares).
    with_history: Series = field(default_factory=Series)
    ratios: list[float] = field(default_factory=list)
    rows: list[str] = field(default_factory=list)
    #: contender -> (client CPU s, server CPU s) of each timed run
    cpu: dict[str, list[tuple[float, float]]] = field(default_factory=dict)

    def cpu_text(self, kind: str) -> str:
        runs = self.cpu.get(kind, [])
        if not runs:
            return "-"
        client = statistics.median(c for c, _ in runs)
        server = statistics.median(s for _, s in runs)
        return f"{client:.2f} + {server:.2f} = {client + server:.2f} s"

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)


def _pairs(
    server: Server, script: Path, work: Path, folder: Path, sql: Path, args: argparse.Namespace,
    quiet: Quiet, concurrency: int,
) -> Pairs:  # fmt: skip
    """``--warmup + --runs`` pairs, each contender on its own fresh database, order alternating."""
    result = Pairs(concurrency)
    tenants, m = args.sweep_tenants or args.tenants, args.migrations
    floor_sql = sql.with_name(f"floor_{m}.sql")
    shares = _psql_shares(work, floor_sql, tenants, m, concurrency)
    history_shares = _history_shares(work, tenants, m, concurrency)

    def one(kind: str, keep: bool) -> tuple[float, float, float]:
        db = _tenant_db(server, f"{kind.replace(' ', '')}{concurrency}", tenants)
        targets = _targets_file(work, server, db, tenants)
        quiet.settle()
        busy, load = (quiet.busy[-1] if quiet.busy else 0.0), os.getloadavg()[0]
        client, served = _client_cpu_s(), server_cpu_s(server)
        if kind == "fleet":
            took = _fleet(script, folder, "up", targets, "--concurrency", str(concurrency))
        elif kind == "psql":
            took = _psql(server, db, sql)
        elif kind == "at once":
            took = _psql_at_once(server, db, shares)
        else:
            took = _psql_at_once(server, db, history_shares)
        cpu = (_client_cpu_s() - client, server_cpu_s(server) - served)
        if keep:
            result.cpu.setdefault(kind, []).append(cpu)
        _check(server, db, tenants, m, history=kind in ("fleet", "history"))
        server.drop_db(db)
        if not keep:
            quiet.busy.pop()
        print(
            f"  {server.label()} c={concurrency} {kind:<7} {'run' if keep else 'warm-up':<7}"
            f" {took:.3f} s (CPUs {busy:.0%} busy before, load {load:.1f})",
            flush=True,
        )
        return took, busy, load

    for i in range(args.warmup + args.runs):
        order = ["fleet", "psql", "at once", "history"]
        order = order if i % 2 == 0 else order[::-1]
        took = {kind: one(kind, keep=i >= args.warmup) for kind in order}
        if i < args.warmup:
            continue
        (f, fb, fl), (p, pb, pl) = took["fleet"], took["psql"]
        result.fleet.add(f)
        result.psql.add(p)
        result.at_once.add(took["at once"][0])
        result.with_history.add(took["history"][0])
        result.ratios.append(f / p)
        result.rows.append(
            f"| {server.label()} | {concurrency} | {i - args.warmup + 1} | {order[0]} |"
            f" {f:.3f} s | {p:.3f} s | **{f / p:.2f}x** | {fb:.0%} / {pb:.0%} |"
            f" {fl:.1f} / {pl:.1f} |"
        )
    return result


def _client_cpu_s() -> float:
    """CPU seconds of the children this script waited for (the contenders' processes)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _server_report(
    server: Server, script: Path, work: Path, args: argparse.Namespace, quiet: Quiet
) -> list[str]:
    """The lines one server adds to the section."""
    m = args.migrations
    folder, floor_sql = generate(work, m)
    sweep_t = args.sweep_tenants or args.tenants
    sql = _psql_file(work, floor_sql, sweep_t, m)
    results = [_pairs(server, script, work, folder, sql, args, quiet, c) for c in args.concurrency]
    lines = [
        f"### {server.label()}: {server.describe()}",
        "",
        f"`fleet up` of {m} migrations to {sweep_t} tenant schemas ({sweep_t * m:,} migrations)"
        " against ONE `psql -f` applying the same migrations serially, pair by pair:",
        "",
        "| --concurrency | fleet up | psql (serial) | migrations/s fleet / psql | spread fleet /"
        " psql | ratio of medians | ratio per pair, median (min-max) | target <= 0.80x |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        n = sweep_t * m
        lines.append(
            f"| {r.concurrency} | {r.fleet.s()} | {r.psql.s()} |"
            f" {n / r.fleet.median:.0f} / {n / r.psql.median:.0f} |"
            f" {r.fleet.spread:.0%} / {r.psql.spread:.0%} |"
            f" {r.fleet.median / r.psql.median:.2f}x | **{r.ratio:.2f}x**"
            f" ({min(r.ratios):.2f}-{max(r.ratios):.2f}) | {_verdict(r.ratio <= TARGET_RATIO)} |"
        )
    lines += [
        "",
        "CPU of each contender, median of its runs: the client's processes + the whole server's"
        " (postmaster, backends that came and went, background processes), on "
        f"{os.cpu_count()} CPUs:",
        "",
        "| --concurrency | fleet up: client + server | psql: client + server |",
        "|---|---|---|",
        *(f"| {r.concurrency} | {r.cpu_text('fleet')} | {r.cpu_text('psql')} |" for r in results),
        "",
        "What the server can do with the same migrations concurrently and nothing else: as many"
        " `psql -f` at once as --concurrency, the tenants dealt among them (no history, no lock,"
        " no per-tenant session of a tool); and the same with a history of pgshift's shape per"
        " tenant (its tables created, an applied row and a log row written with each migration:"
        " the floor of any tool keeping that history), against the serial psql of the same"
        " pairs:",
        "",
        "| --concurrency | psql at once | its ratio to the serial psql (medians) |"
        " CPU client + server | at once with a history per tenant | its ratio |"
        " CPU client + server |",
        "|---|---|---|---|---|---|---|",
        *(
            f"| {r.concurrency} | {r.at_once.s()} | {r.at_once.median / r.psql.median:.2f}x |"
            f" {r.cpu_text('at once')} | {r.with_history.s()} |"
            f" {r.with_history.median / r.psql.median:.2f}x | {r.cpu_text('history')} |"
            for r in results
        ),
    ]
    lines += [
        "",
        "Each pair (CPUs busy / 1-min load average just before each contender's run):",
        "",
        "| server | --concurrency | pair | first | fleet up | psql | fleet / psql | CPUs busy"
        " fleet / psql | load fleet / psql |",
        "|---|---|---|---|---|---|---|---|---|",
        *(row for r in results for row in r.rows),
    ]

    db = _tenant_db(server, "noop", args.tenants)
    targets = _targets_file(work, server, db, args.tenants)
    first = _fleet(script, folder, "up", targets, "--concurrency", str(max(args.concurrency)))
    _check(server, db, args.tenants, m, history=True)
    noop, status = Series(), Series()
    for _ in range(max(5, args.runs)):
        quiet.settle()
        noop.add(_fleet(script, folder, "up", targets))
        status.add(_fleet(script, folder, "status", targets))
    server.drop_db(db)
    lines += [
        "",
        f"Over {args.tenants} migrated tenants ({len(noop.values)} runs each, default"
        f" concurrency): no-op `fleet up` {noop.s()}, spread {noop.spread:.0%},"
        f" {_verdict(noop.median < TARGET_NOOP_S)}; `fleet status -q` {status.s()}, spread"
        f" {status.spread:.0%}, {_verdict(status.median < TARGET_NOOP_S)} (target under"
        f" {TARGET_NOOP_S} s each). Their first `fleet up` took {first:.1f} s.",
    ]
    if args.databases:
        names = [server.fresh_db(f"fleetdb{i}") for i in range(args.databases)]
        dbs = work / f"databases_{server.kind}.toml"
        dbs.write_text(
            "".join(f'[[target]]\nname = "{n}"\nurl = "{server.url(n)}"\n' for n in names),
            encoding="utf-8",
        )
        quiet.settle()
        spent = _fleet(script, folder, "up", dbs, "--concurrency", "8")
        for name in names:
            rows = server.admin('SELECT count(*) FROM "pgshift".applied', dbname=name)[0][0]
            if rows != m:
                sys.exit(f"bench: {name} has {rows} applied rows, not {m}")
        noop_db = _fleet(script, folder, "up", dbs)
        status_db = _fleet(script, folder, "status", dbs)
        for name in names:
            server.drop_db(name)
        lines += [
            "",
            f"{args.databases} separate databases x {m} migrations, concurrency 8: {spent:.1f} s"
            f" ({args.databases * m / spent:.0f} migrations/s); no-op `fleet up` {noop_db:.2f} s,"
            f" `fleet status` {status_db:.2f} s (single runs).",
        ]
    lines.append("")
    print("\n".join(lines), flush=True)
    return lines


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--tenants", type=int, default=200, help="tenant schemas (no-op figures)")
    p.add_argument("--migrations", type=int, default=10, help="migrations per tenant")
    p.add_argument("--concurrency", type=int, nargs="+", default=[8], help="fleet --concurrency")
    p.add_argument("--sweep-tenants", type=int, help="tenants for the pairs (default --tenants)")
    p.add_argument("--databases", type=int, default=0, help="separate databases (0: skip)")
    p.add_argument("--runs", type=int, default=3, help="timed pairs per --concurrency and server")
    p.add_argument("--warmup", type=int, default=0, help="untimed pairs first")
    add_common(p, idle_below=0.25, idle_wait=20, idle_budget=300)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    begun = start(args)
    body = [
        line
        for s in begun.servers
        for line in _server_report(s, begun.pgshift, begun.work, args, begun.quiet)
    ]
    took = time.perf_counter() - begun.began
    lines = [
        *heading(SECTION, command_line("bench_fleet.py")),
        f"Machine: {machine()}.",
        "",
        *body,
        f"{begun.quiet.summary()}. The whole run took {took:.0f} s.",
    ]
    if not args.no_write:
        write_section(args.results, SECTION, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
