"""Benchmark of pgshift's backup and restore against bare pg_dump / pg_restore.

    python bench/bench_backup.py --database-url 'postgresql://postgres@/postgres?host=/tmp' \
        --rows 100000 1000000 --runs 3

(On a PostgreSQL older than 17 the floor cannot run at all: pg_restore 18 sends
`SET transaction_timeout`, which such servers reject; pgshift's restore drops that line.)

For each size, a scratch database is created on the given server with one table of N rows
(bigint id, text, numeric, timestamptz) and an index, then, best of ``--runs``:

* the floor: ``pg_dump -Fc`` to a file, and ``pg_restore --clean --if-exists --single-transaction``
  of it, run by hand with the same binaries;
* pgshift: ``take_backup`` (snapshot, inventory, dump, fsync, ``pg_restore --list``, SHA-256,
  manifest) and ``restore_backup`` (checksum, inventory diff, pg_restore | psql in one
  transaction, read-back verification).

It prints a Markdown table; the ratio is what pgshift's safety costs over the bare tools.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import psycopg.conninfo
from psycopg import sql

from pgshift.db.target import Target
from pgshift.ops.backup import restore_backup, take_backup
from pgshift.process import child_connection, find_tools


def _best(runs: int, action: object) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return min(times)


def bench(server_url: str, rows: int, runs: int) -> tuple[float, float, float, float, int]:
    name = f"bench_backup_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        major = admin.info.server_version // 10000
    url = psycopg.conninfo.make_conninfo(server_url, dbname=name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE t (id bigint PRIMARY KEY, s text, n numeric, at timestamptz);"
                "INSERT INTO t SELECT g, md5(g::text), g / 7.0, now() - g * interval '1 s'"
                f" FROM generate_series(1, {rows}) g; CREATE INDEX t_s ON t (s); ANALYZE t"
            )
        tools = find_tools(major)
        with tempfile.TemporaryDirectory() as tmp, child_connection(url) as (argv, env):
            archive = Path(tmp) / "floor.dump"
            dump = [tools.path("pg_dump"), "-Fc", f"--file={archive}", *argv]
            floor_dump = _best(runs, lambda: subprocess.run(dump, env=env, check=True))
            restore = [
                tools.path("pg_restore"), "--clean", "--if-exists", "--single-transaction",
                "--exit-on-error", *argv, str(archive),
            ]  # fmt: skip
            floor_restore = _best(runs, lambda: subprocess.run(restore, env=env, check=True))
            folder = Path(tmp) / "backups"
            manifests = []
            with Target(url, purpose="bench") as target:
                ours_dump = _best(
                    runs, lambda: manifests.append(take_backup(target, folder, reason="manual"))
                )
                ours_restore = _best(runs, lambda: restore_backup(target, folder, manifests[-1]))
            size = manifests[-1].size_bytes
        return floor_dump, ours_dump, floor_restore, ours_restore, size
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True, help="a server to create databases on")
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(
        "| rows | archive | pg_dump | pgshift backup | ratio"
        " | pg_restore | pgshift restore | ratio |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for rows in args.rows:
        fd, od, fr, orr, size = bench(args.database_url, rows, args.runs)
        print(
            f"| {rows:,} | {size / 1e6:.1f} MB | {fd:.2f} s | {od:.2f} s | {od / fd:.2f}x"
            f" | {fr:.2f} s | {orr:.2f} s | {orr / fr:.2f}x |"
        )


if __name__ == "__main__":
    main()
