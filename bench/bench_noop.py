"""Benchmark of the no-op `pgshift up` and `pgshift status` with N migrations applied.

    python bench/bench_noop.py --count 1000 --runs 15

A deploy calls `pgshift up` on every release, most often with nothing to do, so its latency
(interpreter start included) is what an operator waits for. With N generated migrations applied
on a fresh database of each server (embedded PostgreSQL 18, system PostgreSQL 15 when present),
it times, as fresh processes: the no-op `up` and `status --check` as they run again on the same
folder and history (answered from the remembered verdict, ops/uptodate.py), `status -q` and
`status` (its table, off a terminal) as they run again (the remembered status,
ops/status_memory.py), the no-op `up` and `status -q` as they run first after a change (the
remembered file set aside before each run: files and history read in full; target of all:
under 100 ms), beside three references that say what part of that is unavoidable:
`python -c pass`, `psql -c 'SELECT 1'` and a minimal psycopg script doing the least a full
no-op must do. It then splits the remembered no-op into phases in one process
and the full one into `load_project` and `read_history`, and lists the heaviest imports of the
remembered no-op from `python -X importtime`. It replaces the section "no-op up and status
latency" of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.measure import (
    Quiet,
    Series,
    run,
    timed,
)
from harness.migrations import check_applied, generate, status_args, up_args
from harness.options import add_common, start
from harness.report import command_line, heading, machine, write_section
from harness.servers import Server

SECTION = "no-op up and status latency"
TARGET_S = 0.100
SETTLE_S = 2.2  # source/folder_stat.py's SETTLE_NS, and a margin

warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")  # platformdirs, as root

# Runs in a fresh interpreter: `main()` cold (with its lazy imports) and warm (the work alone),
# the parts of a remembered no-op, then the two phases of a full one that grow with the project.
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
    from pgshift.db.target import Target
    from pgshift.source.folder_stat import folder_stat
    from pgshift.source.stamps import code_stamp

    settings = load_settings({"database_url": url, "migrations_dir": folder})
    out["folder_stat"] = best(lambda: folder_stat(settings.project.migrations_dir))
    out["code_stamp"] = best(code_stamp)
    def stamp():
        with Target.from_settings(settings, url, purpose="check") as target:
            return target.history_stamp()
    out["history_stamp"] = best(stamp)
    out["load_project"] = best(lambda: pgshift.load_project(settings))
    out["read_history"] = best(lambda: pgshift.read_history(settings, url))
except Exception as exc:  # the facade changed: report what is known
    out["error"] = repr(exc)
print("BENCH-PHASES " + json.dumps(out))
"""

#: Where a command run in the work folder remembers its verdicts (ops/uptodate.py).
_VERDICTS = ".pgshift/cache/verdicts.json"
#: Where it remembers its status documents (ops/status_memory.py).
_STATUSES = ".pgshift/cache/status.json"
#: The row of a no-op that finds no verdict: the verdicts file is set aside before each run.
_FIRST = (
    "`pgshift up --yes -q --skip-backup`, first after a change (no remembered verdict:"
    " files and history read)"
)
#: The row of a status that finds no remembered document: that file is set aside likewise.
_FIRST_STATUS = (
    "`pgshift status -q`, first after a change (no remembered status: files and history read)"
)
#: Each row that must not find its memory, and the file it is set aside from.
_SET_ASIDE = {_FIRST: _VERDICTS, _FIRST_STATUS: _STATUSES}

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
    """The no-op timings on one server, with their references."""

    server: str
    count: int
    series: dict[str, Series]  # row label -> wall times
    phases: dict[str, float]
    imports: list[tuple[str, int, int]]  # (module, cumulative us, self us), top level


def top_imports(stderr: str) -> list[tuple[str, int, int]]:
    """Top-level imports of ``-X importtime``, heaviest cumulative time first."""
    top: list[tuple[str, int, int]] = []
    for line in stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| (\S+)", line)
        if m:
            top.append((m.group(3), int(m.group(2)), int(m.group(1))))
    return sorted(top, key=lambda t: -t[1])


def noop(
    server: Server,
    pgshift: Path,
    work: Path,
    count: int,
    runs: int,
    quiet: Quiet,
    dbmate: Path | None = None,
) -> NoopResult:
    """Apply ``count`` migrations once, then time every command ``runs`` times, interleaved;
    with ``dbmate``, its no-op `up` over the same migrations (applied by it) is a row too."""
    folder, _ = generate(work, count)
    db = server.fresh_db(f"noop_{count}")
    url = server.url(db)
    written = time.time()
    run([str(pgshift), *up_args(folder, url)], work)
    check_applied(server, db, count, history=True)
    # A folder changed in the last seconds is never remembered (source/folder_stat.py): let the
    # generated files settle, as a project's files have between two deploys.
    time.sleep(max(0.0, written + SETTLE_S - time.time()))
    python = sys.executable
    up = [str(pgshift), *up_args(folder, url)]
    check = [str(pgshift), "status", "--check", "--dir", str(folder), "--database-url", url]
    cmds = {
        "`pgshift up --yes -q --skip-backup` (again: remembered)": up,
        "`pgshift status --check` (again: remembered)": check,
        _FIRST: up,
        _FIRST_STATUS: [str(pgshift), *status_args(folder, url)],
        "`pgshift status -q` (again: remembered)": [str(pgshift), *status_args(folder, url)],
        "`pgshift status`, its table off a terminal (again: remembered)": [
            str(pgshift),
            *[a for a in status_args(folder, url) if a != "-q"],
        ],
        "reference: `python -c pass` (interpreter start, site)": [python, "-c", "pass"],
        f"reference: minimal psycopg no-op (connect, read history, hash {2 * count} files)": [
            python,
            "-c",
            _MINIMAL_NOOP,
            str(folder),
            url,
        ],
        **_dbmate_row(server, work, count, dbmate),
        "reference: `psql -X -q -c 'SELECT 1'`": [
            str(server.psql),
            "-X",
            "-q",
            "-d",
            url,
            "-c",
            "SELECT 1",
        ],
    }
    series = {label: Series() for label in cmds}
    for i in range(runs + 1):  # the first round warms the page cache and is not kept
        if i > 0:
            quiet.settle()
        for label, cmd in cmds.items():
            elapsed = _timed_without(cmd, work, _SET_ASIDE.get(label))
            if i > 0:
                series[label].add(elapsed)
    name = server.label()
    for label, s in series.items():
        print(f"  {name} no-op N={count}: {s.ms():<18} {label}", flush=True)
    argv = json.dumps(up_args(folder, url))
    proc = run([python, "-c", _PHASES_DRIVER, str(folder), url, argv], work)
    phases: dict[str, float] = {}
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH-PHASES "):
            phases = json.loads(line.removeprefix("BENCH-PHASES "))
    if "error" in phases:
        print(f"  bench: phase timing incomplete: {phases['error']}")
    proc = run([python, "-X", "importtime", str(pgshift), *up_args(folder, url)], work)
    server.drop_db(db)
    return NoopResult(name, count, series, phases, top_imports(proc.stderr))


def _timed_without(cmd: list[str], work: Path, memory: str | None) -> float:
    """timed(cmd), with the remembered file ``memory`` (if any, and once there) set aside,
    untimed, and put back after."""
    if memory is None or not (work / memory).exists():
        return timed(cmd, work)
    kept = work / memory
    aside = kept.with_suffix(".aside")
    kept.replace(aside)
    try:
        return timed(cmd, work)
    finally:
        aside.replace(kept)


def _dbmate_row(
    server: Server, work: Path, count: int, dbmate: Path | None
) -> dict[str, list[str]]:
    """The peer's no-op: dbmate's `up` of the same migrations, which it applied first to a
    database of its own (it keeps no memo: it lists the folder and reads its table)."""
    if dbmate is None:
        return {}
    from bench_up import dbmate_folder, dbmate_url

    folder = dbmate_folder(work, count)
    url = dbmate_url(server.url(server.fresh_db(f"noop_dbmate_{count}")))
    command = [str(dbmate), "--url", url, "--migrations-dir", str(folder), "--no-dump-schema"]
    run([*command, "up"], work)
    return {"peer: `dbmate up` with nothing to do": [*command, "up"]}


def _phase_rows(r: NoopResult) -> list[tuple[str, float]]:
    ph = r.phases
    rows = [
        ("`import pgshift.cli.main`", ph["import_cli"]),
        (
            "first `main()` minus a warm one: lazy imports, one-time caches",
            ph["first_main"] - ph["warm_main"],
        ),
        ("warm `main()`: the work itself (remembered)", ph["warm_main"]),
    ]
    if "history_stamp" in ph:
        parts = ph["folder_stat"] + ph["code_stamp"] + ph["history_stamp"]
        rows += [
            (f"&nbsp;&nbsp;stat of the folder's {2 * r.count} files", ph["folder_stat"]),
            ("&nbsp;&nbsp;stamp of pgshift's own modules", ph["code_stamp"]),
            (
                "&nbsp;&nbsp;libpq: connect and the history's stamp (2 queries)",
                ph["history_stamp"],
            ),
            (
                "&nbsp;&nbsp;the rest: settings, argparse, the verdict file, output",
                max(0.0, ph["warm_main"] - parts),
            ),
            (
                f"first no-op after a change: `load_project` (read, hash {2 * r.count} files,"
                " the parse memo)",
                ph["load_project"],
            ),
            ("first no-op after a change: `read_history` (connect, read)", ph["read_history"]),
        ]
    return rows


def render(
    command: str, servers: list[str], results: list[NoopResult], quiet: Quiet, took: float
) -> str:
    out = heading(SECTION, command)
    add = out.append
    add(f"- machine: {machine()}")
    for line in servers:
        add(f"- server: {line}")
    add(
        "- every command is a fresh process started from its real binary (no pyenv shim), so the"
        " wall time includes interpreter start; the first round is a warm-up and is not kept"
    )
    add(f"- load: {quiet.summary()}")
    add(f"- the whole benchmark took {took:.0f} s; spread = (max - min) / median\n")
    add("| server | command | runs | wall, median (min-max) | spread | target |")
    add("|---|---|---:|---|---:|---|")
    for r in results:
        for label, s in r.series.items():
            target = ""
            if label.startswith("`pgshift"):
                target = ("met" if s.median < TARGET_S else "**missed**") + " (< 100 ms)"
            add(
                f"| {r.server} | {label} | {len(s.values)} | {s.ms()} | {s.spread:.0%} | {target} |"
            )
    add("")
    for r in results:
        if not r.phases:
            continue
        add(f"{r.server}: the no-op `up` in phases, in one process, no profiler (best of 3):\n")
        add("| phase | ms |")
        add("|---|---:|")
        for label, seconds in _phase_rows(r):
            add(f"| {label} | {seconds * 1000:.1f} |")
        add("")
    if results:
        r = results[0]
        total = sum(t[1] for t in r.imports)
        add(
            f"{r.server}: top-level imports of the remembered no-op `up`"
            f" (`python -X importtime`; sum {total / 1000:.0f} ms):\n"
        )
        add("| module | cumulative ms | self ms |")
        add("|---|---:|---:|")
        for name, cum, own in r.imports[:8]:
            add(f"| {name} | {cum / 1000:.1f} | {own / 1000:.1f} |")
        add("")
    return "\n".join(out) + "\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--count", type=int, default=1000, help="migrations applied before timing")
    p.add_argument("--runs", type=int, default=15, help="timed runs of each command")
    p.add_argument("--dbmate", type=Path, help="a dbmate binary: the peer's no-op as a row")
    add_common(p, idle_below=0.25, idle_wait=10, idle_budget=90)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    begun = start(args)
    began, pgshift, work, servers, quiet = (
        begun.began, begun.pgshift, begun.work, begun.servers, begun.quiet,
    )  # fmt: skip
    results = [noop(s, pgshift, work, args.count, args.runs, quiet, args.dbmate) for s in servers]
    described = [s.describe() for s in servers]
    took = time.perf_counter() - began
    section = render(command_line("bench_noop.py"), described, results, quiet, took)
    print("\n" + section)
    if not args.no_write:
        write_section(args.results, SECTION, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
