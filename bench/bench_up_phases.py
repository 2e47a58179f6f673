"""Where the fixed cost of an `up` with work goes: one fresh process per run, split in phases.

    python bench/bench_up_phases.py --count 100 --runs 5
    git archive BASE src | tar -x -C /tmp/base
    python bench/bench_up_phases.py --src /tmp/base/src --src src    # two trees, alternating

Why it exists: bench_up.py gives a straight line through two sizes (a fixed part and a part per
migration) but not what the fixed part is made of. This script runs `up --yes -q --skip-backup`
of ``--count`` generated migrations (bench_up.py's files) on a fresh database of the embedded
PostgreSQL 18, each run a fresh interpreter like the console script, and times, without a
profiler: the interpreter's start (launch to the driver's first line), the imports of psycopg and
pglast where they happen, the phases of the command (each a wrapper around one function, added
when its module is first imported, so no import moves), and the exit after `main()` returns.
Each source tree gets its own copy of the files, so the memos under `.pgshift/cache` are each
tree's own and warm (one untimed `up` first), as bench_up.py's runs find them. Trees alternate
run by run, each run after the CPUs were idle (harness.measure.Quiet). Prints a table of
medians (min-max) in milliseconds; nothing is written to RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness.measure import Quiet, clean_env, default_work_parent, work_folder  # noqa: E402
from harness.migrations import generate, up_args  # noqa: E402
from harness.servers import EmbeddedServer  # noqa: E402

#: The driver run in each fresh process: wraps the phases as their modules arrive.
DRIVER = r"""
import builtins, json, sys, time
START_NS = time.time_ns()
acc = {}
PHASES = [
    ("pgshift.project_files", "read_project", "load_project: files and memos (lazy imports in)"),
    ("pgshift.db.target", "Target.read_history", "history read #"),
    ("pgshift.db.connect", "open_connection", "psycopg sessions opened (2, psycopg's import in)"),
    ("pgshift.ops.planning", "lint_gate", "lint gate (findings memo)"),
    ("pgshift.ops.planning", "with_preflight", "pre-flight"),
    ("pgshift.cli.commands", "_newest_applied", "newest applied, for the plan shown (a read)"),
    ("pgshift.ops.apply", "Runner.run", "runner: lock, history schema, re-read, steps, release"),
    ("pgshift.db.lock", "RunnerLock.acquire", "runner lock: session, acquire, verify, fence"),
    ("pgshift.db.target", "Target.prepare", "history schema created (fresh database)"),
    ("pgshift.ops.apply", "Runner._run_steps", "the migrations (steps)"),
    ("pgshift.cli.commands", "cmd_up", "cmd_up"),
]
def wrap(modname, attr, label):
    owner = sys.modules[modname]
    *path, name = attr.split(".")
    for part in path:
        owner = getattr(owner, part)
    raw = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
    def timed(*a, **k):
        s = time.perf_counter()
        try:
            return raw(*a, **k)
        finally:
            key, n = label, 1
            while label.endswith("#") and f"{label}{n}" in acc:
                n += 1
            key = f"{label}{n}" if label.endswith("#") else label
            acc[key] = acc.get(key, 0.0) + (time.perf_counter() - s) * 1000
    setattr(owner, name, timed)
pending = list(PHASES)
real_import = builtins.__import__
def hooked(name, *a, **k):
    first = name in ("psycopg", "pglast") and name not in sys.modules
    s = time.perf_counter()
    try:
        return real_import(name, *a, **k)
    finally:
        if first:
            acc[f"import {name}"] = (time.perf_counter() - s) * 1000
        for item in list(pending):
            module = sys.modules.get(item[0])
            if module is not None and hasattr(module, item[1].split(".")[0]):
                pending.remove(item)
                wrap(*item)
builtins.__import__ = hooked
s = time.perf_counter()
from pgshift.cli.main import main
acc["import pgshift.cli.main"] = (time.perf_counter() - s) * 1000
s = time.perf_counter()
code = main(sys.argv[1:])
acc["main()"] = (time.perf_counter() - s) * 1000
done = {"start_ns": START_NS, "end_ns": time.time_ns(), **acc}
sys.stderr.write("PHASES " + json.dumps(done) + "\n")
from pgshift.cli.main import leave  # as the console script ends: no interpreter teardown
leave(code)
"""

ORDER = [
    "interpreter start (launch to the driver's first line)",
    "import pgshift.cli.main",
    "main()",
    "cmd_up",
    "load_project: files and memos (lazy imports in)",
    "history read #1",
    "psycopg sessions opened (2, psycopg's import in)",
    "import psycopg",
    "lint gate (findings memo)",
    "pre-flight",
    "import pglast",
    "newest applied, for the plan shown (a read)",
    "runner: lock, history schema, re-read, steps, release",
    "runner lock: session, acquire, verify, fence",
    "history schema created (fresh database)",
    "history read #3",
    "the migrations (steps)",
    "exit (after main() returns)",
    "whole process",
]


def one(server: EmbeddedServer, folder: Path, src: Path, label: str) -> dict[str, float]:
    """One timed fresh-process `up` of ``folder`` with the pgshift of ``src``."""
    db = server.fresh_db(f"phases_{label}")
    env = clean_env()
    env["PYTHONPATH"] = str(src)
    launched = time.time_ns()
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, *up_args(folder, server.url(db))],
        cwd=folder.parent,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    ended = time.time_ns()
    server.drop_db(db)
    line = next((x for x in done.stderr.splitlines() if x.startswith("PHASES ")), None)
    if done.returncode != 0 or line is None:
        sys.exit(f"bench: up failed ({done.returncode})\n{done.stdout}\n{done.stderr}")
    phases: dict[str, float] = json.loads(line.removeprefix("PHASES "))
    phases[ORDER[0]] = (phases.pop("start_ns") - launched) / 1e6
    phases["exit (after main() returns)"] = (ended - phases.pop("end_ns")) / 1e6
    phases["whole process"] = (ended - launched) / 1e6
    return phases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--src", type=Path, action="append", help="a source tree (repeatable)")
    args = parser.parse_args()
    import pgshift

    trees = [p.resolve() for p in args.src] if args.src else [Path(pgshift.__file__).parents[1]]
    work = work_folder(default_work_parent(), keep=False)
    server = EmbeddedServer(work)
    folders = []
    for n, src in enumerate(trees):
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(src / "pgshift")], check=True)
        folder, _ = generate(work / f"tree{n}", args.count)
        one(server, folder, src, f"warm{n}")  # fills this tree's memos; not kept
        folders.append(folder)
    quiet = Quiet()
    runs: list[list[dict[str, float]]] = [[] for _ in trees]
    for _ in range(args.runs):
        for n, src in enumerate(trees):
            quiet.settle()
            runs[n].append(one(server, folders[n], src, f"t{n}"))
    head = " | ".join(str(t) for t in trees)
    print(f"\n`up` of {args.count} migrations, fresh process, PG 18 embedded, ms, median (min-max)")
    print(f"load: {quiet.summary()}\n")
    print(f"| phase | {head} |\n|---|{'---|' * len(trees)}")
    for key in ORDER:
        cells = []
        for tree_runs in runs:
            values = [r.get(key, 0.0) for r in tree_runs]
            med = statistics.median(values)
            cells.append(f"{med:.1f} ({min(values):.1f}-{max(values):.1f})")
        print(f"| {key} | {' | '.join(cells)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
