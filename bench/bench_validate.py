"""Benchmark: `pgshift validate` against `squawk` on the same generated and real migrations.

Usage: python bench/bench_validate.py [--runs 5] [--corpus DIR ...] [counts...]
(default counts: 3 1000 10000; with --corpus and no counts, only the corpora).

Needs squawk on PATH (`pip install squawk-cli`) for the comparison; without it only pgshift is
timed. Each generated migration has a realistic header and a mix of safe and unsafe
statements, plus its rollback file (pgshift checks those too, squawk gets them as well).
``--corpus DIR``: a project whose ``DIR/migrations`` holds real migrations (for example
converted with `pgshift import`); it is copied to a scratch folder first, so its own cache
stays as it is.

Both tools run as fresh processes, in turn, so start-up cost counts as it does for a user and
drift hits both; each folder is timed cold (no .pgshift/cache before each pgshift run) and
warm (the memo present). Reports the median wall time (min-max) and the median peak RSS of
each process (wait4; for pgshift the larger of it and its forked helper, not their sum), and
from one more run per cell the peak of the proportional set size (PSS: shared pages counted
once) of pgshift and its helper together, sampled every 10 ms, the memory the command really
holds at once (only for runs long enough to sample).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

BODIES = (
    "CREATE TABLE t_{i} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text NOT NULL,"
    " created_at timestamptz NOT NULL DEFAULT now());\n"
    "CREATE INDEX t_{i}_email_idx ON t_{i} (email);\n",
    "ALTER TABLE users ADD COLUMN c_{i} text;\n"
    "CREATE INDEX CONCURRENTLY users_c_{i}_idx ON users (c_{i});\n",
    "ALTER TABLE orders ADD CONSTRAINT orders_fk_{i} FOREIGN KEY (user_id) REFERENCES users (id)"
    " NOT VALID;\nALTER TABLE orders VALIDATE CONSTRAINT orders_fk_{i};\n",
    "CREATE INDEX users_x_{i}_idx ON users (created_at);\n"
    "ALTER TABLE users ALTER COLUMN c_{i} SET NOT NULL;\n",
    "CREATE FUNCTION f_{i}() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n"
    "  NEW.updated_at := now();\n  RETURN NEW;\nEND $$;\n",
)
UNDO = (
    "DROP TABLE t_{i};\n",
    "DROP INDEX CONCURRENTLY users_c_{i}_idx;\nALTER TABLE users DROP COLUMN c_{i};\n",
    "ALTER TABLE orders DROP CONSTRAINT orders_fk_{i};\n",
    "ALTER TABLE users ALTER COLUMN c_{i} DROP NOT NULL;\nDROP INDEX users_x_{i}_idx;\n",
    "DROP FUNCTION f_{i}();\n",
)


def write_project(folder: Path, count: int) -> None:
    start = datetime(2020, 1, 1, tzinfo=UTC)
    for i in range(count):
        version = f"{start + timedelta(minutes=i):%Y%m%d%H%M%S}"
        name = f"{version}_change_{i}"
        kind = i % len(BODIES)
        (folder / f"{name}.sql").write_text(
            f"-- Migration: {name}.sql\n-- Description: Change {i}\n-- Version: {version}\n"
            f"-- @zero-downtime: {'true' if kind == 1 else 'false'}\n-- @risk-level: low\n"
            f"-- @estimated-duration: 5 seconds\n\n" + BODIES[kind].format(i=i)
        )
        (folder / f"{name}_rollback.sql").write_text(
            f"-- Rollback: {name}_rollback.sql\n\n" + UNDO[kind].format(i=i)
        )


def run_once(command: list[str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, peak MiB) of one fresh process; wait4 gives that child's own peak."""
    started = time.perf_counter()
    child = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, _, usage = os.wait4(child.pid, 0)
    child.returncode = 0  # reaped here; keep Popen from waiting again
    return time.perf_counter() - started, usage.ru_maxrss / 1024


def _pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(c) for c in fh.read().split()]
    except OSError:
        return []


def tree_peak(command: list[str], cwd: Path) -> float | None:
    """Peak MiB of the summed PSS of a process and its children, sampled every 10 ms; None
    for a run too short (under 0.3 s) for sampling to catch its peak."""
    started = time.perf_counter()
    child = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    while child.poll() is None:
        pids = [child.pid, *_children(child.pid)]
        peak = max(peak, sum(_pss_kib(p) for p in pids))
        time.sleep(0.01)
    return peak / 1024 if time.perf_counter() - started >= 0.3 else None


def summary(samples: list[tuple[float, float]]) -> tuple[float, float, float, float]:
    """(median wall, min wall, max wall, median peak MiB)."""
    walls = [w for w, _ in samples]
    return (
        statistics.median(walls),
        min(walls),
        max(walls),
        statistics.median(p for _, p in samples),
    )


def compare(
    folder: Path, runs: int, cold: bool
) -> tuple[tuple[float | None, ...], tuple[float | None, ...] | None]:
    """pgshift and squawk in turn, run by run; cold removes the parse memo before each run."""
    pgshift = [
        str(Path(sys.executable).with_name("pgshift")),
        "validate",
        "-q",
        "--dir",
        str(folder),
    ]
    squawk = shutil.which("squawk")
    theirs_cmd = [squawk, *map(str, sorted(folder.glob("*.sql")))] if squawk else None
    cache = folder.parent / ".pgshift"
    ours, theirs = [], []
    for _ in range(runs + 1):  # the first pair warms the page cache and is not counted
        if cold:
            shutil.rmtree(cache, ignore_errors=True)
        ours.append(run_once(pgshift, folder.parent))
        if theirs_cmd:
            theirs.append(run_once(theirs_cmd, folder.parent))
    if cold:
        shutil.rmtree(cache, ignore_errors=True)
    our_tree = tree_peak(pgshift, folder.parent)
    their_tree = tree_peak(theirs_cmd, folder.parent) if theirs_cmd else None
    return (*summary(ours[1:]), our_tree), (*summary(theirs[1:]), their_tree) if theirs else None


def cell(s: tuple[float | None, ...]) -> str:
    wall, low, high, rss, pss = s
    shown = f"PSS {pss:.0f} MiB" if pss is not None else "PSS -"
    return f"{wall:.3f} s ({low:.3f}-{high:.3f}), {rss:.0f} MiB, {shown}"


def _rows(label: str, folder: Path, runs: int) -> None:
    for cold in (True, False):
        ours, theirs = compare(folder, runs, cold)
        shown = cell(theirs) if theirs else "not installed"
        wall = f"{ours[0] / theirs[0]:.2f}x" if theirs else "-"
        pss = f"{ours[4] / theirs[4]:.2f}x" if theirs and ours[4] and theirs[4] else "-"
        peak = f"{ours[3] / theirs[3]:.2f}x / {pss}" if theirs else "-"
        memo = "cold" if cold else "warm"
        print(f"| {label} | {memo} | {cell(ours)} | {shown} | {wall} | {peak} |", flush=True)


def main(counts: list[int], corpora: list[Path], runs: int) -> None:
    print(
        "| files (+ rollbacks) | memo | pgshift validate | squawk | wall ratio"
        " | peak ratio (RSS / PSS) |"
    )
    print("|---|---|---|---|---:|---:|")
    scratch = "/dev/shm" if Path("/dev/shm").is_dir() else None
    for count in counts:
        with tempfile.TemporaryDirectory(dir=scratch) as tmp:
            folder = Path(tmp) / "migrations"
            folder.mkdir()
            write_project(folder, count)
            _rows(f"{count} (+{count})", folder, runs)
    for corpus in corpora:
        with tempfile.TemporaryDirectory(dir=scratch) as tmp:
            folder = Path(tmp) / "migrations"
            shutil.copytree(corpus / "migrations", folder)
            files = sorted(folder.glob("*.sql"))
            backs = sum(1 for f in files if f.name.endswith("_rollback.sql"))
            _rows(f"{corpus.name}: {len(files) - backs} (+{backs})", folder, runs)


if __name__ == "__main__":
    argv = sys.argv[1:]
    runs = int(argv.pop(argv.index("--runs") + 1)) if "--runs" in argv else 5
    argv = [a for a in argv if a != "--runs"]
    corpora = []
    while "--corpus" in argv:
        at = argv.index("--corpus")
        corpora.append(Path(argv.pop(at + 1)))
        argv.pop(at)
    counts = [int(a) for a in argv] or ([] if corpora else [3, 1000, 10000])
    main(counts, corpora, runs)
