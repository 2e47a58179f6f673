"""No-op `pgshift up` and `pgshift status` latency with N applied migrations, in a few seconds.

Why it exists: bench_up.py measures everything (throughput, profiles, round trips) and takes
minutes; tuning the no-op path needs a loop of seconds. This script

1. writes N generated migrations (bench_up.py's files: CREATE TABLE, CREATE INDEX, INSERT of
   10 rows, full headers, a rollback each) into ``--work`` unless they are there already, and
   applies them once (the embedded server under ``--work``/.pgshift unless ``--database-url``);
2. times the no-op ``pgshift up --yes --skip-backup -q`` and ``pgshift status -q`` as whole
   processes, in turn, with ``python -c pass`` as the floor: median, min and max;
3. splits one no-op in phases in a fresh process (imports, settings, memo, files, connect and
   history, plan) and lists the heaviest imports of the no-op (``python -X importtime``, the
   smallest of several runs per module, so one slow run does not move them).

    python bench/bench_noop_quick.py --work /dev/shm/noop --count 1000 --runs 21

The console script next to sys.executable is used (a pyenv shim adds ~60 ms). ``--src PATH``
runs another source tree instead (``python -c 'from pgshift.cli.main import run; run()'`` with
PYTHONPATH=PATH, which is what the console script does), e.g. the commit before a change:

    git archive BASE src | tar -x -C /tmp/base
    python bench/bench_noop_quick.py --work /dev/shm/noop-base --src /tmp/base/src \
        --database-url "$(the URL of the server the first run applied to)"

Each tree is byte-compiled first: an installed package has its .pyc files, an editable
checkout under PYTHONDONTWRITEBYTECODE=1 would otherwise compile every module on every run.
Use a separate ``--work`` per tree, since their memos under .pgshift/cache may differ.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

PHASES = r"""
import time, sys
t = [(time.perf_counter(), time.process_time())]
mark = lambda: t.append((time.perf_counter(), time.process_time()))
from pgshift.cli import main as _main
mark()
from pgshift.config import load_settings
settings = load_settings({})
mark()
from pgshift.project_files import read_project
loaded = read_project(settings)
mark()
from pgshift.embedded import target_url
url = target_url(settings)
mark()
from pgshift.db.target import Target
with Target.from_settings(settings, url, purpose="status") as target:
    history = target.read_history()
    mark()
from pgshift import plan
steps = plan.plan_pending(loaded.migrations, history, None).steps
mark()
assert not steps and len(history.applied) == len(loaded.migrations)
names = ["import pgshift.cli.main", "settings", "read_project (files + memo)",
         "embedded server url", "connect + read history", "plan"]
for n, a, b in zip(names, t, t[1:]):
    print(f"{n}\twall {(b[0] - a[0]) * 1000:.1f}\tcpu {(b[1] - a[1]) * 1000:.1f}")
print("heavy modules loaded:", [m for m in ("psycopg", "pglast", "rich") if m in sys.modules])
"""


def pgshift_command(src: Path | None) -> list[str]:
    if src is not None:
        return [sys.executable, "-c", "from pgshift.cli.main import run; run()"]
    path = Path(sys.executable).with_name("pgshift")
    if not path.exists():
        raise SystemExit(f"no console script at {path}: pip install -e . first")
    return [str(path)]


def compile_tree(src: Path | None, env: dict[str, str]) -> None:
    code = "import pgshift, os; print(os.path.dirname(pgshift.__file__))"
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    package = done.stdout.strip()
    subprocess.run([sys.executable, "-m", "compileall", "-q", package], check=True, env=env)


def clean_env(database_url: str | None, src: Path | None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PG", "DB_", "PGSHIFT_")) and k != "DATABASE_URL"
    }
    env["DB_BACKUP_ENABLED"] = "false"
    if database_url:
        env["DATABASE_URL"] = database_url
    if src is not None:
        env["PYTHONPATH"] = str(src)
    return env


def prepare(work: Path, count: int, env: dict[str, str], pgshift: list[str]) -> None:
    sys.path.insert(0, str(HERE))
    from bench_up import generate  # the same files as the big benchmark

    folder = work / "migrations"
    if not folder.exists():
        generated, _ = generate(work, count)
        generated.rename(folder)
    subprocess.run([*pgshift, "up", "--yes", "--skip-backup", "-q"], cwd=work, env=env, check=True)


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall ms, user + system CPU ms) of one whole process: CPU time is what a busy shared
    machine distorts least, wall time is what the target is about."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    elapsed = (time.perf_counter() - start) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    return elapsed, cpu


def cell(values: list[float]) -> str:
    return f"{statistics.median(values):.0f} ms ({min(values):.0f}-{max(values):.0f})"


def importtime(work: Path, env: dict[str, str], runs: int) -> list[tuple[str, int]]:
    """Top-level imports of a no-op `up`, the smallest cumulative time of ``runs`` runs."""
    code = "from pgshift.cli.main import main; main(['up', '--yes', '--skip-backup', '-q'])"
    best: dict[str, int] = {}
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", code],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        for line in done.stderr.splitlines():
            if not line.startswith("import time:") or "|" not in line:
                continue
            _, cumulative, name = line.split("|")
            if name.startswith("  ") or not cumulative.strip().isdigit():
                continue  # only top-level imports: their times include their children
            us = int(cumulative)
            best[name.strip()] = min(us, best.get(name.strip(), us))
    return sorted(best.items(), key=lambda kv: -kv[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/dev/shm/pgshift-noop"))
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--src", type=Path, default=None, help="another source tree to time")
    args = parser.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    src = args.src.resolve() if args.src else None
    env = clean_env(args.database_url, src)
    compile_tree(src, env)
    pgshift = pgshift_command(src)
    prepare(work, args.count, env, pgshift)
    commands = {
        "pgshift up --yes --skip-backup -q": [*pgshift, "up", "--yes", "--skip-backup", "-q"],
        "pgshift status -q": [*pgshift, "status", "-q"],
        "python -c pass": [sys.executable, "-c", "pass"],
    }
    walls: dict[str, list[float]] = {label: [] for label in commands}
    cpus: dict[str, list[float]] = {label: [] for label in commands}
    for cmd in commands.values():
        timed(cmd, work, env)  # warm-up: page cache, memo written
    for _ in range(args.runs):
        for label, cmd in commands.items():
            elapsed, cpu = timed(cmd, work, env)
            walls[label].append(elapsed)
            cpus[label].append(cpu)
    print(f"load average at the end: {os.getloadavg()}")
    print("| command | runs | wall, median (min-max) | CPU user+sys, median (min-max) |")
    print("|---|---:|---|---|")
    for label in commands:
        print(f"| `{label}` | {args.runs} | {cell(walls[label])} | {cell(cpus[label])} |")
    print("\nphases of one no-op in a fresh process (ms):")
    for _ in range(3):
        done = subprocess.run(
            [sys.executable, "-c", PHASES], cwd=work, env=env, capture_output=True, text=True
        )
        print(done.stdout.strip() or done.stderr)
    print("\ntop-level imports of the no-op up (smallest of 5 runs, ms):")
    for name, us in importtime(work, env, 5)[:12]:
        print(f"  {name:40s} {us / 1000:7.1f}")


if __name__ == "__main__":
    main()
