"""Benchmark: `pgshift validate` against `squawk` on the same 1,000 and 10,000 migration files.

Usage: python bench/bench_validate.py [counts...]  (default: 1000 10000)
Needs squawk on PATH (`pip install squawk-cli`) for the comparison; without it only pgshift is
timed.  Each migration has a realistic header and a mix of safe and unsafe statements, plus its
rollback file (pgshift checks those too, squawk gets them as well).  Both tools run as fresh
processes, best of three, so start-up cost counts as it does for a user.
"""

from __future__ import annotations

import shutil
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


def best_of(command: list[str], cwd: Path, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, cwd=cwd, capture_output=True, check=False)
        times.append(time.perf_counter() - started)
    return min(times)


def main(counts: list[int]) -> None:
    squawk = shutil.which("squawk")
    print("| files (+ rollbacks) | pgshift validate | squawk | ratio |")
    print("|---|---|---|---|")
    for count in counts:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            folder = root / "migrations"
            folder.mkdir()
            write_project(folder, count)
            env_cmd = [sys.executable, "-m", "pgshift", "validate", "-q", "--dir", str(folder)]
            ours = best_of(env_cmd, root)
            theirs = (
                best_of([squawk, *map(str, sorted(folder.glob("*.sql")))], root) if squawk else None
            )
            ratio = f"{ours / theirs:.2f}x" if theirs else "-"
            shown = f"{theirs:.2f} s" if theirs else "not installed"
            print(f"| {count} (+{count}) | {ours:.2f} s | {shown} | {ratio} |")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1000, 10000])
