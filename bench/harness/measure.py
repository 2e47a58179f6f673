"""Timing on a shared machine: the real binaries, a clean environment, idle waits, medians.

Why each piece exists:
* pgshift must start from its real console script: a pyenv shim is a bash script that adds
  about 60 ms to every start, which would swamp the no-op latency we measure;
* the environment is cleaned so that no ``PG*``, ``DB_*`` or ``DATABASE_URL`` of the caller
  points a run elsewhere than the bench server;
* the machine is shared (other agents run tests on its 2 cores), so every timed run first waits,
  boundedly, for the CPUs to be idle, and the report says how busy they were.
"""

from __future__ import annotations

import atexit
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# Environment variables that would make pgshift or psql look elsewhere than the bench server.
FOREIGN_ENV = ("DATABASE_URL", "DB_", "PG", "PGSHIFT_", "PSQLRC")


def pgshift_script(explicit: str | None = None) -> Path:
    """The pgshift console script next to ``sys.executable`` (or ``explicit``); never a shim."""
    script = Path(explicit) if explicit else Path(sys.executable).parent / "pgshift"
    if not script.is_file():
        sys.exit(f"bench: no pgshift console script at {script}; pass --pgshift PATH")
    first_line = script.read_bytes().split(b"\n", 1)[0]
    if b"bash" in first_line or "/shims/" in str(script):
        sys.exit(f"bench: {script} is a pyenv shim; pass the real script with --pgshift")
    return script


def compile_pgshift() -> Path:
    """Write the bytecode of the pgshift this process imports (PYTHONPATH included) and its
    kept dataclass methods, and return its folder.

    An installed pgshift has its .pyc files (pip compiles them); a source tree run with
    PYTHONDONTWRITEBYTECODE=1 (as in this sandbox) has none, and every process then compiles
    ~60 modules again: ~0.1 s per start, which is not the tool's cost. compileall writes them
    whatever that variable says, and a run only reads them.
    """
    import compileall

    import pgshift

    folder = Path(pgshift.__file__).parent
    compileall.compile_dir(folder, quiet=1)
    # The same for the dataclass methods pgshift keeps beside its bytecode (method_cache.py):
    # a user's first run writes them; here that variable would stop every run from doing so.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = os.pathsep.join([str(folder.parent), env.get("PYTHONPATH", "")])
    warm = "import pgshift.method_cache as m; m.warm()"
    subprocess.run([sys.executable, "-c", warm], env=env, check=True, capture_output=True)
    return folder


def clean_env(keep: Sequence[str] = ()) -> dict[str, str]:
    """The caller's environment without variables that redirect pgshift or psql.

    ``keep`` lists prefixes let through anyway (the lock-stall bench lets ``PGSHIFT_*`` through
    so the runner settings under test come from the caller). Backups are off besides
    ``--skip-backup``, so a regression in that flag's wiring cannot turn a run into a pg_dump
    benchmark (it happened once).
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(FOREIGN_ENV) or (keep and k.startswith(tuple(keep)))
    }
    env.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())
    env["DB_BACKUP_ENABLED"] = "false"
    return env


def work_folder(parent: Path, *, keep: bool) -> Path:
    """A fresh folder for server data and generated files, removed at exit unless ``keep``.

    The default parent is tmpfs (``/dev/shm``): on this shared VM's disk, fsync latency made
    identical runs vary from 1.5 s to 7 s. fsync stays on; it is just cheap on tmpfs.
    """
    work = Path(tempfile.mkdtemp(prefix="pgshift-bench-", dir=parent))
    work.chmod(0o755)  # as root, the servers run as their own system users and must enter it
    if not keep:
        # Registered before the servers' exit handlers, so it runs after they stopped.
        atexit.register(shutil.rmtree, work, True)
    return work


def default_work_parent() -> Path:
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())


def run(
    cmd: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run one process; a failure stops the benchmark with its output."""
    proc = subprocess.run(
        cmd, cwd=cwd, env=dict(env or clean_env()), capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def timed(cmd: Sequence[str], cwd: Path) -> float:
    """Wall time in seconds of one process, from fork to exit (interpreter start included)."""
    started = time.perf_counter()
    run(cmd, cwd)
    return time.perf_counter() - started


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

    threshold: float = 0.25
    max_wait_s: float = 20.0
    budget_s: float = 150.0
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


# -- repeated figures --------------------------------------------------------------------------


@dataclass
class Series:
    """Repeated measurements of one quantity (seconds unless said otherwise)."""

    values: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.values.append(value)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def spread(self) -> float:
        """(max - min) / median: how far apart the repeated runs were."""
        return (max(self.values) - min(self.values)) / self.median if self.median else 0.0

    def s(self) -> str:
        """``median (min-max)`` in seconds."""
        return f"{self.median:.3f} s ({min(self.values):.3f}-{max(self.values):.3f})"

    def ms(self) -> str:
        """``median (min-max)`` in milliseconds."""
        lo, hi = min(self.values) * 1000, max(self.values) * 1000
        return f"{self.median * 1000:.0f} ms ({lo:.0f}-{hi:.0f})"

    def plain(self, digits: int = 0) -> str:
        """``median (min-max)`` of unitless values (counts)."""
        lo, hi = min(self.values), max(self.values)
        return f"{self.median:.{digits}f} ({lo:.{digits}f}-{hi:.{digits}f})"
