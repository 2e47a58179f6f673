"""Benchmark of expand and contract (SPEC 15, issue 21) under an old-code and a new-code workload.

    PYTHONPATH=src python bench/bench_expand.py --server both --repeat 3
    PYTHONPATH=src python bench/bench_expand.py --server pg15 --rows 300000 --write

Without --database-url it starts the benchmark servers (harness/servers.py): ``pg18`` the
embedded 18, ``pg15`` the system 15. ``--write`` replaces its section of RESULTS.md.

Per run, on a scratch database: a table ``accounts (id bigserial PRIMARY KEY, name text UNIQUE,
amount int, index on amount)`` of ``--rows`` rows, then the migration

    -- @expand-contract: true
    ALTER TABLE accounts RENAME COLUMN name TO full_name;
    ALTER TABLE accounts ALTER COLUMN amount TYPE bigint;

through the library API (``pgshift.up``, ``pgshift.contract``), while two workloads run on
their own connections, each in a loop of INSERT ... RETURNING, UPDATE, upsert (ON CONFLICT on
the name, DO UPDATE ... RETURNING), SELECT by key and (every third loop) DELETE, each checking
what it reads against what it wrote:

* the old code (``name``, int amounts) from before ``up`` until before ``contract``;
* the new code (``full_name``; amounts beyond the int range once contract is done) from the
  end of expand until after ``contract``.

The timeline: ``before`` (the old code and a peer of the same shape, so two clients run as in
the window; a set-based UPDATE of ``--plain-rows`` rows timed beside them), ``expand``,
``window`` (old and new code; the same set-based UPDATE), ``contract``. At each phase boundary
the workloads pause and every row is checked: the two shapes agree (name = full_name, the
shadow = amount::bigint) and every value equals what its last writer wrote (the build, the
set-based UPDATE, or the workload whose row it is). After contract: only id, full_name and
amount (bigint) remain, with no trigger, function, view, pgshift-named column, constraint or
index.

Measured against issue 21's goals: 0 errors and 0 disagreeing rows; the longest single
statement of either workload overlapping expand or contract at most lock_timeout + 1 s; the
old code's UPDATE rate in the window at least half of its rate before ``up`` (write penalty at
most 2x), shown beside the set-based UPDATE's rows/s before and in the window. A statement
prepared before contract's type swap fails once with "cached plan must not change result type"
and is run again after DEALLOCATE ALL (the documented remedy, as in
tests/integration/test_expand_contract.py): counted as ``re-prepared``, not as an error.

``--diagnose`` adds, with the workloads paused before ``up`` and before ``contract``, the
set-based UPDATE after a VACUUM, in the window also without the sync trigger, with an emptied
sync function, without the shadow index, and without both (rolled back, best of 3).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import psycopg.conninfo
from psycopg import sql

import pgshift
from pgshift import events
from pgshift.config import Settings, load_settings

V1, V2 = "20260101000000", "20260102000000"
SHADOW = f"amount_pgshift_new_{V2}"
TABLE = """CREATE TABLE accounts (
    id bigserial PRIMARY KEY,
    name text NOT NULL,
    amount integer NOT NULL DEFAULT 0,
    CONSTRAINT accounts_name_key UNIQUE (name)
);
CREATE INDEX accounts_amount_idx ON accounts (amount);
"""
EXPAND = """-- Description: rename name, widen amount
-- @expand-contract: true
ALTER TABLE accounts RENAME COLUMN name TO full_name;
ALTER TABLE accounts ALTER COLUMN amount TYPE bigint;
"""
UNDO = (
    "ALTER TABLE accounts RENAME COLUMN full_name TO name;\n"
    "ALTER TABLE accounts ALTER COLUMN amount TYPE integer;\n"
)
WIDE = 2**33  # added to the new code's amounts after contract: no int holds them


@dataclass
class Statement:
    """One statement of a workload: what it was and when it ran (perf_counter seconds)."""

    kind: str
    began: float
    ended: float


class Workload(threading.Thread):
    """One shape's code, on its own connection: the mix of the module docstring, in a loop,
    each value it reads checked against what it wrote; pausable at a loop's end so the rows
    can be checked at a phase boundary while nothing is half-written."""

    def __init__(self, url: str, column: str, tag: str) -> None:
        super().__init__(daemon=True, name=tag)
        self.url, self.column, self.tag = url, column, tag
        self.halt = threading.Event()
        self.go = threading.Event()
        self.go.set()
        self.idle = threading.Event()
        self.wide = False  # amounts beyond int (the new code once contract is done)
        self.errors: list[str] = []
        self.reprepared = 0
        self.statements: list[Statement] = []
        self.expected: dict[int, tuple[str, int] | None] = {}  # id -> (name, amount); None: deleted

    def pause(self) -> None:
        self.go.clear()
        if not self.idle.wait(timeout=60):
            raise RuntimeError(f"{self.tag}: did not pause within 60 s")

    def resume(self) -> None:
        self.idle.clear()
        self.go.set()

    def finish(self) -> None:
        self.halt.set()
        self.go.set()
        self.join(timeout=60)

    def _q(
        self, conn: psycopg.Connection[Any], kind: str, query: str, params: tuple[Any, ...]
    ) -> Any:
        """Run one statement as the application would (psycopg prepares it after 5 runs);
        a plan prepared before a type swap is dropped once and the statement run again."""
        began = time.perf_counter()
        try:
            try:
                cur = conn.execute(query.encode(), params)
            except psycopg.errors.FeatureNotSupported as exc:
                if "cached plan must not change result type" not in str(exc):
                    raise
                self.reprepared += 1
                conn.execute("DEALLOCATE ALL")
                cur = conn.execute(query.encode(), params)
            return cur.fetchone() if cur.description else None
        finally:
            self.statements.append(Statement(kind, began, time.perf_counter()))

    def run(self) -> None:
        conn = psycopg.connect(self.url, autocommit=True)
        i = 0
        try:
            while not self.halt.is_set():
                if not self.go.is_set():
                    self.idle.set()
                    self.go.wait()
                    continue
                i += 1
                try:
                    self._loop(conn, i)
                except psycopg.Error as exc:
                    self.errors.append(f"{type(exc).__name__}: {exc}".strip())
                    if conn.closed or conn.broken:
                        conn = psycopg.connect(self.url, autocommit=True)
        finally:
            conn.close()

    def _loop(self, conn: psycopg.Connection[Any], i: int) -> None:
        c, key = self.column, f"{self.tag}-{i}"
        base = WIDE if self.wide else 0
        row = self._q(
            conn, "insert",
            f"INSERT INTO accounts ({c}, amount) VALUES (%s, %s) RETURNING id, {c}, amount",
            (key, base + i),
        )  # fmt: skip
        self._check("insert", row[1:], (key, base + i))
        ident = row[0]
        self.expected[ident] = (key, base + i)
        self._q(
            conn, "update", "UPDATE accounts SET amount = %s WHERE id = %s", (base + i + 1, ident)
        )
        self.expected[ident] = (key, base + i + 1)
        got = self._q(
            conn, "upsert",
            f"INSERT INTO accounts ({c}, amount) VALUES (%s, %s) ON CONFLICT ({c})"
            f" DO UPDATE SET amount = excluded.amount RETURNING id, {c}, amount",
            (key, base + i + 2),
        )  # fmt: skip
        self._check("upsert", got, (ident, key, base + i + 2))
        self.expected[ident] = (key, base + i + 2)
        read = self._q(conn, "select", f"SELECT {c}, amount FROM accounts WHERE id = %s", (ident,))
        self._check("select", read, (key, base + i + 2))
        if i % 3 == 0:
            self._q(conn, "delete", "DELETE FROM accounts WHERE id = %s", (ident,))
            self.expected[ident] = None

    def _check(self, what: str, got: Any, wanted: tuple[Any, ...]) -> None:
        if got is None or tuple(got) != wanted:
            self.errors.append(f"{what} returned {got}, wrote {wanted}")

    def rate(self, kind: str, began: float, ended: float) -> float:
        """Statements of ``kind`` finished per second between ``began`` and ``ended``."""
        done = sum(1 for s in self.statements if s.kind == kind and began <= s.ended < ended)
        return done / (ended - began)

    def latency_ms(self, kind: str, began: float, ended: float) -> float:
        took = [
            (s.ended - s.began) * 1000
            for s in self.statements
            if s.kind == kind and began <= s.ended < ended
        ]
        return statistics.median(took) if took else float("nan")

    def longest(self, began: float, ended: float) -> float:
        """The longest statement (seconds) that was running at some instant of [began, ended]."""
        over = [s.ended - s.began for s in self.statements if s.began < ended and s.ended > began]
        return max(over, default=0.0)


@dataclass
class Run:
    """What one run measured; every list of ``problems`` is a goal missed for correctness."""

    before_updates: float = 0.0  # old code's UPDATE statements per second, before up
    window_updates: float = 0.0
    before_update_ms: float = 0.0  # their median latency
    window_update_ms: float = 0.0
    before_plain: float = 0.0  # set-based UPDATE rows/s
    window_plain: float = 0.0
    expand_s: float = 0.0
    backfill_s: float = 0.0
    contract_s: float = 0.0
    longest_expand_s: float = 0.0
    longest_contract_s: float = 0.0
    lock_retries: int = 0
    errors: int = 0
    reprepared: int = 0
    disagreeing: int = 0  # rows where the shapes disagree or a value is not its last writer's
    leftovers: list[str] = field(default_factory=list)
    diagnosis: dict[str, float] = field(default_factory=dict)  # --diagnose: rows/s
    problems: list[str] = field(default_factory=list)


def _project(folder: Path) -> None:
    migrations = folder / "migrations"
    migrations.mkdir(parents=True)
    for version, name, text, back in (
        (V1, "accounts", TABLE, "DROP TABLE accounts;\n"),
        (V2, "rename_and_widen", EXPAND, UNDO),
    ):
        (migrations / f"{version}_{name}.sql").write_text(text)
        (migrations / f"{version}_{name}_rollback.sql").write_text(back)


def _settings(folder: Path, url: str) -> Settings:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PGSHIFT_", "DB_", "PG"))}
    env.update({k: v for k, v in os.environ.items() if k.startswith("PGSHIFT_")})
    env.update({"DATABASE_URL": url, "DB_BACKUP_ENABLED": "false"})
    return load_settings(env=env, cwd=folder)


class Checker:
    """The phase-boundary checks: the shapes agree, every value is its last writer's."""

    def __init__(self, url: str, rows: int, plain_rows: int) -> None:
        self.url, self.rows, self.plain_rows = url, rows, min(plain_rows, rows)
        self.flipped = False  # the set-based UPDATE negates amount of ids 1..plain_rows

    def plain_update(self) -> float:
        """Negate the amount of ids 1..plain_rows in one statement; its rows per second."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            began = time.perf_counter()
            conn.execute("UPDATE accounts SET amount = -amount WHERE id <= %s", (self.plain_rows,))
            took = time.perf_counter() - began
        self.flipped = not self.flipped
        return self.plain_rows / took

    def check(
        self, run: Run, phase: str, shapes: list[tuple[str, str]], loads: list[Workload]
    ) -> None:
        """Count the rows that break a rule, through each shape (name column, amount column)."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            if len(shapes) == 2:
                (n1, a1), (n2, a2) = shapes
                q = sql.SQL(
                    "SELECT count(*) FROM accounts WHERE {} IS DISTINCT FROM {}"
                    " OR {}::bigint IS DISTINCT FROM {}"
                ).format(*(sql.Identifier(x) for x in (n1, n2, a1, a2)))
                self._count(run, phase, "rows where the shapes disagree", conn.execute(q))
            for name, amount in shapes:
                q = sql.SQL(
                    "SELECT count(*) FROM accounts WHERE id <= %s AND ({} IS DISTINCT FROM"
                    " 'n' || id OR {} IS DISTINCT FROM"
                    " id * CASE WHEN id <= %s AND %s THEN -1 ELSE 1 END)"
                ).format(sql.Identifier(name), sql.Identifier(amount))
                found = conn.execute(q, (self.rows, self.plain_rows, self.flipped))
                self._count(run, phase, f"built rows not as written ({name})", found)
                for load in loads:
                    self._workload_rows(run, phase, conn, load, name, amount)

    def _workload_rows(
        self, run: Run, phase: str, conn: psycopg.Connection[Any], load: Workload, name: str,
        amount: str,
    ) -> None:  # fmt: skip
        q = sql.SQL("SELECT id, {}, {} FROM accounts WHERE id = ANY(%s)").format(
            sql.Identifier(name), sql.Identifier(amount)
        )
        found = {r[0]: (r[1], r[2]) for r in conn.execute(q, (list(load.expected),))}
        wrong = sum(1 for k, v in load.expected.items() if found.get(k) != v)
        if wrong:
            run.disagreeing += wrong
            run.problems.append(f"{phase}: {wrong} rows of {load.tag} not as written ({name})")

    @staticmethod
    def _count(run: Run, phase: str, what: str, cur: psycopg.Cursor[Any]) -> None:
        row = cur.fetchone()
        if row is not None and row[0]:
            run.disagreeing += row[0]
            run.problems.append(f"{phase}: {row[0]} {what}")


#: --diagnose: what the plain UPDATE costs without each thing expand added, with the
#: workloads paused, each variant in a transaction that is rolled back (so no value changes).
SYNC = f"accounts_pgshift_sync_{V2}"
VARIANTS = {
    "as is": [],
    "sync trigger disabled": [f"ALTER TABLE accounts DISABLE TRIGGER zz_{SYNC}"],
    "sync function emptied (PL/pgSQL call only)": [
        f"CREATE OR REPLACE FUNCTION {SYNC}() RETURNS trigger LANGUAGE plpgsql"
        " AS $$BEGIN RETURN NEW; END$$"
    ],
    "shadow index dropped": [f"DROP INDEX accounts_amount_idx_pgshift_ix_{V2}"],
    "neither trigger nor shadow index": [
        f"ALTER TABLE accounts DISABLE TRIGGER zz_{SYNC}",
        f"DROP INDEX accounts_amount_idx_pgshift_ix_{V2}",
    ],
}


def _diagnose(url: str, plain_rows: int, phase: str, rounds: int = 3) -> dict[str, float]:
    """Rows/s of the plain UPDATE per variant: the best of ``rounds``, the variants taking
    turns, each after a VACUUM (a rolled-back UPDATE leaves its dead rows behind), so the
    machine's noise and the table's bloat weigh the same on each."""
    update = b"UPDATE accounts SET amount = -amount WHERE id <= %s"
    variants = VARIANTS if phase == "window" else {"as is": []}
    rates: dict[str, list[float]] = {label: [] for label in variants}
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(rounds):
            for label, setup in variants.items():
                conn.execute("VACUUM accounts")
                with conn.transaction(force_rollback=True):
                    for statement in setup:
                        conn.execute(statement.encode())
                    began = time.perf_counter()
                    conn.execute(update, (plain_rows,))
                    rates[label].append(plain_rows / (time.perf_counter() - began))
    return {f"{phase}, after VACUUM: {label}": max(r) for label, r in rates.items()}


def _leftovers(url: str) -> list[str]:
    """What expand added that contract should have removed, and the shape that must remain."""
    with psycopg.connect(url) as conn:
        found = [
            f"{kind} {name}"
            for kind, name in conn.execute(
                "SELECT 'trigger', tgname FROM pg_trigger"
                " WHERE tgrelid = 'accounts'::regclass AND NOT tgisinternal"
                " UNION ALL SELECT 'function', proname FROM pg_proc"
                " WHERE pronamespace = 'public'::regnamespace"
                " UNION ALL SELECT 'view', viewname FROM pg_views WHERE schemaname = 'public'"
                " UNION ALL SELECT 'relation', relname FROM pg_class"
                " WHERE relname LIKE '%pgshift%' AND relnamespace = 'public'::regnamespace"
                " UNION ALL SELECT 'constraint', conname FROM pg_constraint"
                " WHERE conname LIKE '%pgshift%'"
            ).fetchall()
        ]
        columns = conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attrelid = 'accounts'::regclass AND attnum > 0 AND NOT attisdropped"
            " ORDER BY attnum"
        ).fetchall()
    if sorted(columns) != [("amount", "bigint"), ("full_name", "text"), ("id", "bigint")]:
        found.append(f"columns {columns}")
    return found


def _listen(run: Run, marks: dict[str, float]) -> Callable[[events.Event], None]:
    def on_event(event: events.Event) -> None:
        name = type(event).__name__
        if name == "LockRetry":
            run.lock_retries += 1
        elif name in ("BackfillStarted", "BackfillFinished"):
            marks[name] = time.perf_counter()

    return on_event


def _build(url: str, settings: Settings, rows: int) -> None:
    pgshift.up(settings, to=V1, backup=False)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO accounts (name, amount) SELECT 'n' || g, g FROM generate_series(1, %s) g",
            (rows,),
        )
        conn.execute("VACUUM ANALYZE accounts")
        conn.execute("CHECKPOINT")


def bench(
    server_url: str, rows: int, plain_rows: int, slot_s: float, diagnose: bool = False
) -> Run:
    """One run on a fresh scratch database of the server at ``server_url``."""
    name = f"bench_expand_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = psycopg.conninfo.make_conninfo(server_url, dbname=name)
    folder = Path(tempfile.mkdtemp(prefix="bench_expand_"))
    _project(folder)
    settings = _settings(folder, url)
    try:
        _build(url, settings, rows)
        return _timeline(url, settings, rows, plain_rows, slot_s, diagnose)
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _timeline(
    url: str, settings: Settings, rows: int, plain_rows: int, slot_s: float, diagnose: bool
) -> Run:
    run, marks = Run(), dict[str, float]()
    checker = Checker(url, rows, plain_rows)
    old, peer = Workload(url, "name", "old"), Workload(url, "name", "peer")
    new = Workload(url, "full_name", "new")
    old_shape, new_shape = ("name", "amount"), ("full_name", "amount")
    try:
        old.start()
        peer.start()
        time.sleep(1.0)  # warm: connections made, statements prepared
        began = time.perf_counter()
        time.sleep(slot_s)
        ended = time.perf_counter()
        run.before_updates = old.rate("update", began, ended)
        run.before_update_ms = old.latency_ms("update", began, ended)
        run.before_plain = checker.plain_update()
        peer.finish()
        old.pause()
        checker.check(run, "before up", [old_shape], [old, peer])
        if diagnose:
            run.diagnosis.update(_diagnose(url, checker.plain_rows, "before"))
        old.resume()

        t0 = time.perf_counter()
        pgshift.up(settings, backup=False, on_event=_listen(run, marks))
        t1 = time.perf_counter()
        run.expand_s = t1 - t0
        if "BackfillFinished" in marks and "BackfillStarted" in marks:
            run.backfill_s = marks["BackfillFinished"] - marks["BackfillStarted"]
        old.pause()
        both = [old_shape, ("full_name", SHADOW)]
        checker.check(run, "end of expand", both, [old, peer])
        new.start()
        old.resume()

        time.sleep(1.0)
        began = time.perf_counter()
        time.sleep(slot_s)
        ended = time.perf_counter()
        run.window_updates = old.rate("update", began, ended)
        run.window_update_ms = old.latency_ms("update", began, ended)
        run.window_plain = checker.plain_update()
        old.pause()
        new.pause()
        checker.check(run, "before contract", both, [old, peer, new])
        if diagnose:
            run.diagnosis.update(_diagnose(url, checker.plain_rows, "window"))
        old.finish()
        new.resume()

        t2 = time.perf_counter()
        pgshift.contract(settings, backup=False, on_event=_listen(run, marks))
        t3 = time.perf_counter()
        run.contract_s = t3 - t2
        new.wide = True
        time.sleep(2.0)
        new.pause()
        checker.check(run, "after contract", [new_shape], [old, peer, new])
        new.finish()
    finally:
        for load in (old, peer, new):
            if load.is_alive():
                load.finish()
    run.longest_expand_s = max(w.longest(t0, t1) for w in (old, new))
    run.longest_contract_s = max(w.longest(t2, t3) for w in (old, new))
    run.errors = sum(len(w.errors) for w in (old, peer, new))
    for w in (old, peer, new):
        run.problems.extend(f"{w.tag}: {e}" for e in w.errors[:3])
    run.reprepared = sum(w.reprepared for w in (old, peer, new))
    run.leftovers = _leftovers(url)
    return run


GOAL_PENALTY = 2.0  # issue 21: the old code's update rate in the window at least half


def _spread(values: list[float], digits: int = 1) -> str:
    """``median (min-max)`` of a measure over the repeats."""
    shown = f"{{:,.{digits}f}}"
    middle = shown.format(statistics.median(values))
    if len(values) < 2:
        return middle
    return f"{middle} ({shown.format(min(values))}-{shown.format(max(values))})"


def _lines(label: str, rows: int, runs: list[Run], lock_timeout_ms: int) -> list[str]:
    """One Markdown table row per measure of ``runs`` on one server, then the goals."""
    limit = lock_timeout_ms / 1000 + 1.0

    def col(get: Callable[[Run], float], digits: int = 1) -> str:
        return _spread([get(r) for r in runs], digits)

    measures = [
        ("errors, both workloads (re-prepared once after the type swap)",
         f"{sum(r.errors for r in runs)} ({col(lambda r: r.reprepared, 0)})"),
        ("rows not as last written / shapes disagreeing, 4 boundaries",
         str(sum(r.disagreeing for r in runs))),
        ("leftovers after contract", str(sum(len(r.leftovers) for r in runs))),
        ("expand s (of which backfill s)",
         f"{col(lambda r: r.expand_s)} ({col(lambda r: r.backfill_s)})"),
        ("contract s", col(lambda r: r.contract_s, 2)),
        ("lock retries (expand + contract)", col(lambda r: r.lock_retries, 0)),
        (f"longest statement during expand s (goal <= {limit:g})",
         col(lambda r: r.longest_expand_s, 2)),
        (f"longest statement during contract s (goal <= {limit:g})",
         col(lambda r: r.longest_contract_s, 2)),
        ("old code UPDATEs/s before up", col(lambda r: r.before_updates, 0)),
        ("old code UPDATEs/s in the window", col(lambda r: r.window_updates, 0)),
        (f"write penalty: before / window (goal <= {GOAL_PENALTY:g}x)",
         col(lambda r: r.before_updates / r.window_updates, 2) + "x"),
        ("old code UPDATE p50 ms, before / window",
         f"{col(lambda r: r.before_update_ms, 2)} / {col(lambda r: r.window_update_ms, 2)}"),
        ("plain set-based UPDATE rows/s, before up", col(lambda r: r.before_plain, 0)),
        ("plain set-based UPDATE rows/s, in the window", col(lambda r: r.window_plain, 0)),
        ("plain UPDATE: before / window",
         col(lambda r: r.before_plain / r.window_plain, 2) + "x"),
    ]  # fmt: skip
    for key in runs[0].diagnosis:
        rates = [r.diagnosis[key] for r in runs]
        measures.append((f"diagnosis, plain UPDATE rows/s, {key}", _spread(rates, 0)))
    out = [f"| {label} | {rows:,} | {len(runs)} | {what} | {value} |" for what, value in measures]
    worst = max(max(r.longest_expand_s, r.longest_contract_s) for r in runs)
    penalty = statistics.median(r.before_updates / r.window_updates for r in runs)
    goals = [
        ("0 errors, 0 rows disagreeing", all(not r.errors and not r.disagreeing for r in runs)),
        (f"longest statement <= {limit:g} s (worst {worst:.2f} s)", worst <= limit),
        (f"write penalty <= {GOAL_PENALTY:g}x (median {penalty:.2f}x)", penalty <= GOAL_PENALTY),
        ("nothing left after contract", all(not r.leftovers for r in runs)),
    ]
    verdicts = "; ".join(f"{'holds' if ok else 'MISSED'}: {what}" for what, ok in goals)
    problems = sorted({p for r in runs for p in [*r.problems, *r.leftovers]})
    return [*out, "", f"{label}: {verdicts}", *(f"  - {p}" for p in problems[:10]), ""]


def _targets(args: argparse.Namespace) -> list[tuple[str, str]]:
    if args.database_url:
        return [("given", args.database_url)]
    from harness.measure import default_work_parent, work_folder
    from harness.servers import start_servers

    which = {"pg18": "embedded", "pg15": "system", "both": "both"}[args.server]
    work = work_folder(default_work_parent(), keep=False)  # tmpfs, as the other benchmarks
    return [(s.label(), s.url("postgres")) for s in start_servers(which, work)]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--database-url", help="a server where a scratch database can be made")
    parser.add_argument("--server", choices=["both", "pg18", "pg15"], default="both")
    parser.add_argument("--rows", type=int, default=300_000, help="rows of the table")
    parser.add_argument("--repeat", type=int, default=1, help="runs per server; medians shown")
    parser.add_argument("--slot", type=float, default=5.0, help="seconds each rate is measured")
    parser.add_argument("--plain-rows", type=int, default=50_000, help="rows of the plain UPDATE")
    parser.add_argument("--write", action="store_true", help="replace the section of RESULTS.md")
    parser.add_argument(
        "--diagnose", action="store_true", help="the plain UPDATE without each thing expand added"
    )
    args = parser.parse_args()
    from harness import report

    lock_timeout_ms = _settings(Path(tempfile.mkdtemp()), "postgresql:///x").runner.lock_timeout_ms
    load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    lines = [
        "| server | rows | runs | measure | median (min-max) |",
        "|---|---:|---:|---|---:|",
    ]
    notes: list[str] = []
    print("\n".join(lines), flush=True)
    for label, url in _targets(args):
        runs = []
        for _ in range(args.repeat):
            runs.append(bench(url, args.rows, args.plain_rows, args.slot, args.diagnose))
        shown = "\n".join(_lines(label, args.rows, runs, lock_timeout_ms))
        table, _, rest = shown.partition("\n\n")
        lines.append(table)
        notes.append(rest)
        print(table, "\n", rest, sep="", flush=True)
    section = [
        *report.heading(TITLE, report.command_line("bench_expand.py")),
        f"Machine: {report.machine()}; load average at the start {load_before}."
        f" lock_timeout {lock_timeout_ms} ms.\n\n",
        *(line + "\n" for line in lines),
        "\n",
        *(note.rstrip() + "\n\n" for note in notes),
    ]
    if args.write:
        report.write_section(report.RESULTS, TITLE, "".join(section).rstrip("\n") + "\n")


TITLE = "expand and contract under two workloads (`bench/bench_expand.py`)"

if __name__ == "__main__":
    main()
