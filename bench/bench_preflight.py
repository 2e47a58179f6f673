"""Benchmark of pre-flight checks against the plain query for the violators, run with psql.

    PYTHONPATH=src python bench/bench_preflight.py --server both --rows 1000000 --runs 7

Issue 19's goal: a check with no violation costs at most about what a plain query for the
violators costs with psql. On a fresh database of each server, one table of N clean rows (no
violator of any check) and a referenced table are built and analyzed; then, per pending
statement, pair by pair and alternating which goes first:

* pgshift: the library API, ``preflight([statement], Target(url))`` in this process, timed from
  opening the connection to the results (the catalog facts, the derivation from the parse tree,
  the check's read-only transaction with its settings, the query); the check's own query time
  (``duration_ms``, what pgshift reports) is shown beside it;
* psql: ``psql -X -c`` of the query a person would write for the violators, a fresh process
  (its start and connection included, as psql is used).

The statements: SET NOT NULL (NULLs), CREATE UNIQUE INDEX (duplicates), ADD FOREIGN KEY
(orphans), ALTER COLUMN ... TYPE integer of a bigint (values out of range). Every pgshift run is
checked to report "pass". The section of bench/RESULTS.md gives, per server and check, the
medians (min-max) of both, the ratio of the medians and the median of the pairwise ratios, and
the machine's load.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.measure import Quiet, Series, run
from harness.options import add_common, start
from harness.report import command_line, heading, machine, write_section
from harness.servers import Server

from pgshift.db.target import Target
from pgshift.ops.preflight import preflight
from pgshift.rewrite.preflight import EXPECTED_DURATION, PASS

SECTION = "pre-flight checks vs the plain violators query (`bench/bench_preflight.py`)"

SETUP = """
CREATE TABLE customers (id int PRIMARY KEY);
INSERT INTO customers SELECT g FROM generate_series(1, 1000) g;
CREATE TABLE orders (id bigint PRIMARY KEY, region text, code text, customer int, qty bigint);
INSERT INTO orders
  SELECT g, 'eu', 'C-' || g, 1 + g % 1000, g % 100000 FROM generate_series(1, {rows}) g;
VACUUM ANALYZE customers;
VACUUM ANALYZE orders;
"""

#: (check, pending statement, the plain violators query a person would run with psql)
PAIRS = [
    (
        "NULLs",
        "ALTER TABLE orders ALTER COLUMN region SET NOT NULL",
        "SELECT id FROM orders WHERE region IS NULL",
    ),
    (
        "duplicates",
        "CREATE UNIQUE INDEX orders_code ON orders (code)",
        "SELECT code, count(*) FROM orders GROUP BY code HAVING count(*) > 1",
    ),
    (
        "FK orphans",
        "ALTER TABLE orders ADD FOREIGN KEY (customer) REFERENCES customers",
        "SELECT o.id FROM orders o LEFT JOIN customers c ON c.id = o.customer"
        " WHERE o.customer IS NOT NULL AND c.id IS NULL",
    ),
    (
        "bad cast",
        "ALTER TABLE orders ALTER COLUMN qty TYPE integer",
        "SELECT id FROM orders WHERE qty NOT BETWEEN -2147483648 AND 2147483647",
    ),
]


@dataclass
class Pair:
    """One check's timings on one server: pgshift, its query alone, psql, pairwise ratios."""

    pgshift: Series = field(default_factory=Series)
    query: Series = field(default_factory=Series)
    psql: Series = field(default_factory=Series)
    ratios: list[float] = field(default_factory=list)


def _pgshift(url: str, statement: str) -> tuple[float, float]:
    """(wall seconds of the library call, the check's own query seconds)."""
    began = time.perf_counter()
    with Target(url) as target:
        results = preflight([statement], target)
    took = time.perf_counter() - began
    [check] = [r for r in results if r.check != EXPECTED_DURATION]
    if check.status != PASS or check.duration_ms is None:
        sys.exit(f"bench: {statement}: expected a pass, got {check.status}: {check.detail}")
    return took, check.duration_ms / 1000


def _psql(server: Server, url: str, query: str, cwd: Path) -> float:
    began = time.perf_counter()
    out = run([str(server.psql), "-X", "-q", "-A", "-t", "-d", url, "-c", query], cwd).stdout
    took = time.perf_counter() - began
    if out.strip():
        sys.exit(f"bench: {query}: expected no violators, got {out[:200]!r}")
    return took


def bench_server(server: Server, rows: int, runs: int, work: Path, quiet: Quiet) -> list[Pair]:
    db = server.fresh_db("preflight")
    url = server.url(db)
    for statement in SETUP.format(rows=int(rows)).split(";\n"):
        if statement.strip():
            server.admin(statement, dbname=db)
    pairs = [Pair() for _ in PAIRS]
    for _, statement, query in PAIRS:  # warm the cache: each side reads the table once
        _pgshift(url, statement)
        _psql(server, url, query, work)
    for number in range(runs):
        for (_, statement, query), pair in zip(PAIRS, pairs, strict=True):
            quiet.settle()
            if number % 2 == 0:
                wall, own = _pgshift(url, statement)
                floor = _psql(server, url, query, work)
            else:
                floor = _psql(server, url, query, work)
                wall, own = _pgshift(url, statement)
            pair.pgshift.add(wall)
            pair.query.add(own)
            pair.psql.add(floor)
            pair.ratios.append(wall / floor)
    server.drop_db(db)
    return pairs


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--runs", type=int, default=7)
    add_common(p, idle_below=0.5, idle_wait=10.0, idle_budget=120.0)
    args = p.parse_args()
    began = start(args)
    lines = heading(SECTION, command_line("bench_preflight.py"))
    lines.append(
        f"{args.rows:,} clean rows; pgshift through the library API (`preflight([statement],"
        " Target(url))`, connection to results), its check's own query time beside it;"
        " psql is `psql -X -c` of the plain violators query, a fresh process. Pair by pair,"
        f" alternating which goes first, {args.runs} pairs per check.\n"
    )
    for server in began.servers:
        pairs = bench_server(server, args.rows, args.runs, began.work, began.quiet)
        lines.append(f"**{server.describe()}**\n")
        lines.append(
            "| check | pgshift (library) | its query | psql -c | ratio of medians"
            " | pairwise ratio (min-max) |\n|---|---|---|---|---|---|"
        )
        for (name, statement, _), pair in zip(PAIRS, pairs, strict=True):
            ratio = pair.pgshift.median / pair.psql.median
            lines.append(
                f"| {name} (`{statement}`) | {pair.pgshift.ms()} | {pair.query.ms()}"
                f" | {pair.psql.ms()} | {ratio:.2f}x | {statistics.median(pair.ratios):.2f}x"
                f" ({min(pair.ratios):.2f}-{max(pair.ratios):.2f}) |"
            )
        lines.append("")
    lines.append(f"Machine: {machine()}. {began.quiet.summary()}.\n")
    section = "\n".join(lines) + "\n"
    print(section)
    if not args.no_write:
        write_section(args.results, SECTION, section)
    print(f"bench: {time.perf_counter() - began.began:.0f} s in all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
