"""The server's CPU for each part of one fleet target's `up`, on the embedded and the system server.

    python bench/bench_fleet_parts.py --targets 50 --server both

Why it exists: bench_fleet.py shows a `fleet up` of tenant schemas using several times the
server CPU one serial psql uses for the same migrations, on a machine with two cores, where CPU
is the limit. This script measures, as the whole server's CPU (harness.servers.server_cpu_s:
the postmaster, its reaped children and the live ones) divided by ``--targets``, what each part
a target adds costs the server on its own, one part after another on a fresh database:

* a session: connect, one `SELECT 1`, disconnect (a target opens its own and its lock's);
* pgshift's history schema created in a new tenant (PostgresHistoryStore.upgrade: what a
  target's first run does before its first migration);
* the 10 generated migrations (bench_up.py's: a table, an index, 10 rows), each in its own
  transaction, over one session: what psql does for the tenant too.

It prints a table and writes nothing; its reading goes into bench/RESULTS.md by hand.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

from harness.migrations import migration_sql
from harness.options import add_common, start
from harness.report import command_line, machine
from harness.servers import Server, server_cpu_s

warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


def _per_target(server: Server, targets: int, part: Callable[[int], None]) -> float:
    """Server CPU ms per target of ``part`` run for targets 0..N-1."""
    before = server_cpu_s(server)
    for i in range(targets):
        part(i)
    return (server_cpu_s(server) - before) / targets * 1000


def _parts(server: Server, targets: int, migrations: int) -> dict[str, float]:
    import psycopg

    from pgshift.db.store import PostgresHistoryStore

    db = server.fresh_db("parts")
    url = server.url(db)
    with psycopg.connect(url, autocommit=True) as conn:

        def session(_: int) -> None:
            with psycopg.connect(url, autocommit=True) as other:
                other.execute("SELECT 1")

        def history(i: int) -> None:
            conn.execute(f"CREATE SCHEMA t{i:04d}")
            PostgresHistoryStore(f"t{i:04d}_pgshift").upgrade(conn)

        def work(i: int) -> None:
            conn.execute(f"SET search_path TO t{i:04d}")  # as the serial psql's file does
            for m in range(migrations):
                conn.execute(f"BEGIN;\n{migration_sql(m)}COMMIT")

        found = {
            "a session (connect, SELECT 1, disconnect)": _per_target(server, targets, session),
            "pgshift's history schema in a new tenant": _per_target(server, targets, history),
            f"the {migrations} migrations, one transaction each": _per_target(
                server, targets, work
            ),
        }
    server.drop_db(db)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=50)
    parser.add_argument("--migrations", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    add_common(parser, idle_below=0.25, idle_wait=10.0, idle_budget=60.0)
    args = parser.parse_args()
    begun = start(args)
    print(f"\n    {command_line('bench_fleet_parts.py')}\n\n{machine()}\n")
    print("| server | part | server CPU ms per target, median (min-max) of the rounds |")
    print("|---|---|---|")
    for server in begun.servers:
        rounds = []
        for _ in range(args.rounds):
            begun.quiet.settle()
            rounds.append(_parts(server, args.targets, args.migrations))
        for part in rounds[0]:
            values = sorted(r[part] for r in rounds)
            print(
                f"| {server.label()} | {part} | {statistics.median(values):.1f}"
                f" ({values[0]:.1f}-{values[-1]:.1f}) |"
            )
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
