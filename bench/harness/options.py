"""The command-line options and the start every benchmark script shares.

Each script adds its own workload's options; the machine-facing ones (which servers, how long
to wait for idle CPUs, where to work, which pgshift, where the results go) are the same
everywhere, and so is the start: find pgshift, make the work folder, start the servers.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

from harness.measure import (
    Quiet,
    compile_pgshift,
    default_work_parent,
    pgshift_script,
    work_folder,
)
from harness.report import RESULTS
from harness.servers import Server, start_servers


def add_common(
    p: argparse.ArgumentParser, *, idle_below: float, idle_wait: float, idle_budget: float
) -> None:
    """The options every script has, with the idle-wait defaults that suit its workload."""
    p.add_argument("--server", choices=["embedded", "system", "both"], default="both")
    p.add_argument(
        "--idle-below", type=float, default=idle_below, help="CPU busy fraction to wait for"
    )
    p.add_argument("--idle-wait", type=float, default=idle_wait, help="max seconds to wait per run")
    p.add_argument(
        "--idle-budget", type=float, default=idle_budget, help="max seconds of waiting in all"
    )
    p.add_argument("--work-parent", type=Path, default=default_work_parent())
    p.add_argument("--pgshift", help="the pgshift console script (default: next to python)")
    p.add_argument("--results", type=Path, default=RESULTS, help="file to write the section to")
    p.add_argument("--no-write", action="store_true", help="print the section only")
    p.add_argument("--keep", action="store_true", help="keep the work folder")


@dataclass(frozen=True)
class Start:
    """What every script has once it has started: its clock, pgshift, folder and servers."""

    began: float
    pgshift: Path
    work: Path
    servers: list[Server]
    quiet: Quiet


def start(args: argparse.Namespace) -> Start:
    """Find pgshift, make the work folder, start the servers, and say where they are."""
    began = time.perf_counter()
    pgshift = pgshift_script(args.pgshift)
    work = work_folder(args.work_parent, keep=args.keep)
    print(f"bench: work folder {work}\nbench: pgshift {pgshift}", flush=True)
    print(f"bench: bytecode of {compile_pgshift()} written", flush=True)  # as pip would
    servers = start_servers(args.server, work)
    quiet = Quiet(args.idle_below, args.idle_wait, args.idle_budget)
    return Start(began, pgshift, work, servers, quiet)
