"""The generated project the up and no-op benchmarks apply, and the check that it was applied.

Each migration is a 3-column table, an index and one INSERT of 10 rows, with full pgshift
headers and a rollback file, so pgshift reads, hashes and lints as much as in a real project.
The floor gets the very same SQL as one file with BEGIN/COMMIT around each migration.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

from harness.servers import Server

BASE_VERSION = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


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
    A folder already written for this ``count`` is reused.
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


def up_args(folder: Path, url: str) -> list[str]:
    return ["up", "--yes", "-q", "--skip-backup", "--dir", str(folder), "--database-url", url]


def status_args(folder: Path, url: str) -> list[str]:
    return ["status", "-q", "--dir", str(folder), "--database-url", url]


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
