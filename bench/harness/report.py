"""What every report says about where it was measured, and its place in RESULTS.md.

Each script owns one ``## `` section of RESULTS.md and replaces only that one, so the scripts
can be rerun one at a time without losing the others' figures.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent  # bench/
RESULTS = HERE / "RESULTS.md"


def command_line(script: str) -> str:
    """The command that reproduces this run, as it was typed (arguments quoted if needed)."""
    shown = [a if re.fullmatch(r"[\w./=-]+", a) else repr(a) for a in sys.argv[1:]]
    return " ".join([f"python bench/{script}", *shown])


def machine() -> str:
    """CPUs, kernel, Python and the load average: what a reader needs to weigh the figures."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        load = "unknown"
    return (
        f"{os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()};"
        f" {platform.python_implementation()} {platform.python_version()}; load average at"
        f" the end {load}"
    )


def git_describe() -> str:
    """The commit measured, and whether src/ had uncommitted changes."""

    def git(*args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=HERE, capture_output=True, text=True, check=False)
        return proc.stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", str(HERE.parent / "src"))
    return f"commit {head}" + (" plus uncommitted changes under src/" if dirty else "")


def heading(section: str, command: str) -> list[str]:
    """The first lines of a section: title, date, commit and the exact command."""
    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    return [
        f"## {section}\n",
        f"Measured {today} on pgshift {git_describe()}, with:\n",
        f"```\n{command}\n```\n",
    ]


def write_section(path: Path, section_title: str, section: str) -> None:
    """Replace the ``## section_title`` section of ``path``, leaving every other one alone."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# pgshift benchmark results\n"
    lines = text.splitlines(keepends=True)
    title = f"## {section_title}"
    start = next((i for i, line in enumerate(lines) if line.rstrip() == title), None)
    if start is None:
        new = text.rstrip("\n") + "\n\n" + section
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        tail = "".join(lines[end:])
        new = "".join(lines[:start]) + section + ("\n" + tail if tail else "")
    path.write_text(new, encoding="utf-8")
    print(f"bench: wrote the section {section_title!r} of {path}")
