"""What each part of one migration's message costs, on the embedded and the system PostgreSQL.

    python bench/bench_history_write.py --count 300 --rounds 5 --server both

db/execute.py sends each transactional migration as ONE simple-query message: a marker comment
and BEGIN, the SET LOCAL timeouts (set_config), the migration's statements, the history write
(store.applied_sql: the applied INSERT, the progress DELETE and the log INSERT in one statement,
guarded by the plpgsql ``expect``) and COMMIT. This script sends ``--count`` generated migrations
(harness/migrations.py: a table, an index, 10 rows) over ONE psycopg connection, through
db/execute.run_parts, in one loop per variant of that message:

* ``psql``: BEGIN, the statements, COMMIT in one message (the floor's SQL, pgshift's way);
* ``psql, a round trip each``: the same, one message per statement, as psql itself sends it;
* ``body``: pgshift's message without the history write (marker, BEGIN, timeouts, statements);
* ``body, timeouts by set_config``: ``body`` with the timeouts as one `SELECT set_config(...)`,
  as pgshift sent them before it sent `SET LOCAL`;
* ``as up sends it (write prepared by the store)``: ``body`` plus the write as `up` sends it now,
  `EXECUTE` of the form db/prepared.py PREPAREs once per session;
* ``as up sends a batch (32 a message)``: the same migrations 32 to a message, as `up` sends
  consecutive small ones: every migration after the first of its message passes the stop gate
  and stamps its start first (db/execute.py, run_transactions);
* ``full``: pgshift's message exactly as `up` sends it (the write built by the real store);
* ``+applied``, ``+log``, ``+progress``, ``+expect``: ``body`` plus one part of the write alone;
* ``+write, no guard``: ``body`` plus the write without its ``expect`` WHERE;
* ``write only``: marker, BEGIN, timeouts, the write, COMMIT (no migration statements);
* ``full, write prepared``: ``full`` with the write PREPAREd once per session and EXECUTEd;
* ``full, write as a function``: ``full`` with the write as one call of a plpgsql function
  (created for the loop), whose statements' plans the server caches per session.

Each (round, server, variant) gets a fresh database with pgshift's schema and a CHECKPOINT; the
variants run in a shuffled order in each round and the servers alternate, so both are measured
in the same run. It prints, per server and variant, the median time per migration over the
rounds with its min-max, the difference to ``body``, and the WAL bytes per migration
(pg_current_wal_lsn before and after the loop). It times no pgshift process: only the server's
answer to the message plus one client round trip. It prints a section for bench/RESULTS.md and
writes nothing: the section's reading is written by hand beside it.
"""

from __future__ import annotations

import argparse
import functools
import random
import statistics
import sys
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.measure import default_work_parent, work_folder
from harness.migrations import migration_sql
from harness.report import command_line, heading, machine
from harness.servers import Server, start_servers

warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")  # platformdirs, as root

SCHEMA = "pgshift"
SECTION = "one migration's message, part by part (`bench/bench_history_write.py`)"
Parts = Callable[[int], list[bytes]]
#: The same write as store.applied_sql with expect, as a statement prepared once per session
#: (SQL PREPARE, so that EXECUTE can travel inside the simple-query message): what parsing and
#: planning the write for every migration costs. pgshift does not do this (see RESULTS.md).
PREPARE = (
    "PREPARE pgshift_applied(text, text, text, text, text, text, text, uuid, jsonb, text) AS"
    " WITH d AS (SELECT 0::bigint + floor(extract(epoch FROM clock_timestamp()"
    " - transaction_timestamp()) * 1000)::bigint AS ms),"
    " a AS (INSERT INTO pgshift.applied (version, description, checksum, rollback_checksum,"
    " rollback_sql, duration_ms, applied_by, host, run_id, metadata)"
    " SELECT $1, $2, $3, $4, $5, d.ms, $6, $7, $8, $9 FROM d),"
    " p AS (DELETE FROM pgshift.progress WHERE version = $1 RETURNING action, statements_done)"
    " INSERT INTO pgshift.log (run_id, event, version, detail)"
    " SELECT $8, 'migration_applied', $1, '{}'::jsonb || jsonb_build_object('duration_ms', d.ms)"
    " FROM d WHERE pgshift.expect(NOT EXISTS (SELECT 1 FROM p), $10)"
)
#: The same write as a plpgsql function: its three statements' plans are cached by the server
#: per session without the client keeping any state, and the call is cheap to parse and plan.
#: pgshift does not do this (see RESULTS.md); the guard is the same compare-and-set as _guard.
FUNCTION = """
CREATE FUNCTION pgshift.bench_record_applied(v text, descr text, chk text, rchk text, rsql text,
    by_user text, on_host text, run uuid, meta jsonb, message text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    ms bigint := floor(extract(epoch FROM clock_timestamp() - transaction_timestamp()) * 1000);
    was text;
BEGIN
    DELETE FROM pgshift.progress WHERE version = v RETURNING action INTO was;
    IF was IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'PGSMV', MESSAGE = message;
    END IF;
    INSERT INTO pgshift.applied (version, description, checksum, rollback_checksum,
        rollback_sql, duration_ms, applied_by, host, run_id, metadata)
    VALUES (v, descr, chk, rchk, rsql, ms, by_user, on_host, run, meta);
    INSERT INTO pgshift.log (run_id, event, version, detail)
    VALUES (run, 'migration_applied', v, jsonb_build_object('duration_ms', ms));
END
$$
"""
#: Variants that write the applied row (checked after each loop).
WRITES = {
    "full",
    "+applied",
    "+write, no guard",
    "write only",
    "full, write prepared",
    "full, write as a function",
    "as up sends it (write prepared by the store)",
    "as up sends a batch (32 a message)",
}
#: Variants whose parts go one message each (a round trip per statement, as psql sends a file).
ONE_BY_ONE = {"psql, a round trip each"}
#: Variants whose messages carry this many migrations each.
BATCHED = {"as up sends a batch (32 a message)": 32}


class Messages:
    """The parts of migration i's message in each variant, the history write built by ``store``."""

    def __init__(self, conn: Any, store: Any, run_id: str) -> None:
        from pgshift.db.execute import _timeouts
        from pgshift.db.prepared import PreparedWrites

        self.conn, self.store, self.run_id = conn, store, run_id
        self.timeouts = _timeouts(500, 300_000, local=True)
        self.prepared = PreparedWrites(conn)

    @staticmethod
    def version(i: int) -> str:
        return f"2024{i:010d}"

    @staticmethod
    def statements(i: int) -> list[bytes]:
        return [s.strip().encode() for s in migration_sql(i).split(";\n") if s.strip()]

    def begin(self, i: int) -> list[bytes]:
        from pgshift.db.activity import marker

        return [marker("apply", SCHEMA, self.version(i)) + b"BEGIN", *self.timeouts]

    def begin_set_config(self, i: int) -> list[bytes]:
        """BEGIN with the timeouts as pgshift set them before (one planned SELECT)."""
        from pgshift.db.activity import marker

        timeouts = (
            b"SELECT set_config('lock_timeout', '500ms', true),"
            b" set_config('statement_timeout', '300000ms', true)"
        )
        return [marker("apply", SCHEMA, self.version(i)) + b"BEGIN", timeouts]

    def row(self, i: int) -> Any:
        from pgshift.history import AppliedMigration

        return AppliedMigration(
            version=self.version(i),
            description=f"create_bench_table_{i:05d}",
            checksum=f"{i:064x}",
            rollback_checksum=f"{i + 1:064x}",
            applied_at=None,  # type: ignore[arg-type]
            duration_ms=0,
            applied_by="bench",
            host="vm",
            run_id=self.run_id,
            metadata={},
            rollback_sql=f"DROP TABLE IF EXISTS bench_{i:05d};\n",
        )

    def write(self, i: int) -> bytes:
        """The history write exactly as `up` sends it (store.applied_sql, compare-and-set)."""
        from pgshift.history import Expect

        return bytes(self.store.applied_sql(self.conn, self.row(i), expect=Expect()))

    def batch_member(self, i: int) -> list[bytes]:
        """Migration i as `up` sends it in a batch of BATCHED's size: a later one passes the
        stop gate and stamps its start after BEGIN (PostgresExecutor._message)."""
        size = BATCHED["as up sends a batch (32 a message)"]
        body = [*self.begin(i), *self.statements(i), self.up_write(i), b"COMMIT"]
        if i % size == 0:
            return body
        return [b"BEGIN", self.gate_stamp, *body[1:]]

    @functools.cached_property
    def gate_stamp(self) -> bytes:
        from pgshift.db.execute import PostgresExecutor

        class _Gate:  # the executor composes the gate's statement from the schema alone
            schema = SCHEMA

            def close_gate(self) -> bool:
                return False

            def open_gate(self) -> None:
                pass

        executor = PostgresExecutor(self.conn, self.store, gate=_Gate())
        return executor._gate_and_stamp()

    def up_write(self, i: int) -> bytes:
        """The history write as `up` sends it now: EXECUTE of the store's PREPAREd form."""
        from pgshift.history import Expect

        row = self.row(i)
        return bytes(
            self.store.applied_sql(self.conn, row, expect=Expect(), prepared=self.prepared)
        )

    def _compose(self, template: str, i: int, **values: Any) -> bytes:
        return bytes(
            self.store._compose(
                self.conn, template, **values, version=self.version(i), run_id=self.run_id
            )
        )

    def _row_values(self, i: int) -> dict[str, Any]:
        r = self.row(i)
        return {
            "description": r.description,
            "checksum": r.checksum,
            "rollback_checksum": r.rollback_checksum,
            "rollback_sql": r.rollback_sql,
            "applied_by": r.applied_by,
            "host": r.host,
            "metadata": {},
        }

    def applied(self, i: int) -> bytes:
        return self._compose(
            "INSERT INTO {s}.applied (version, description, checksum, rollback_checksum,"
            " rollback_sql, duration_ms, applied_by, host, run_id, metadata) VALUES ({version},"
            " {description}, {checksum}, {rollback_checksum}, {rollback_sql}, 0, {applied_by},"
            " {host}, {run_id}, {metadata})",
            i,
            **self._row_values(i),
        )

    def log(self, i: int) -> bytes:
        return self._compose(
            "INSERT INTO {s}.log (run_id, event, version, detail)"
            " VALUES ({run_id}, 'migration_applied', {version}, '{{}}'::jsonb)",
            i,
        )

    def progress(self, i: int) -> bytes:
        return self._compose("DELETE FROM {s}.progress WHERE version = {version}", i)

    def expect(self, i: int) -> bytes:
        return self._compose("SELECT {s}.expect(true, {message})", i, message="moved")

    def unguarded(self, i: int) -> bytes:
        """The write without its ``WHERE expect(...)``: the CTE's three writes alone."""
        from pgshift.db.store import _guard
        from pgshift.history import Expect

        guarded = self.write(i)
        clause, _ = _guard(Expect(), self.version(i))
        return guarded[: guarded.rfind(clause.split("{s}", 1)[0].encode())]

    def executed(self, i: int) -> bytes:
        return self._compose(
            "EXECUTE pgshift_applied({version}, {description}, {checksum}, {rollback_checksum},"
            " {rollback_sql}, {applied_by}, {host}, {run_id}, {metadata}, {message})",
            i,
            **self._row_values(i),
            message=f"the progress of {self.version(i)} is not where this run left it",
        )

    def called(self, i: int) -> bytes:
        return self._compose(
            "SELECT {s}.bench_record_applied({version}, {description}, {checksum},"
            " {rollback_checksum}, {rollback_sql}, {applied_by}, {host}, {run_id}, {metadata},"
            " {message})",
            i,
            **self._row_values(i),
            message=f"the progress of {self.version(i)} is not where this run left it",
        )

    def variants(self) -> dict[str, Parts]:
        """Variant name -> a function of migration i returning the parts of its one message."""
        b, st = self.begin, self.statements
        commit = [b"COMMIT"]
        return {
            "psql": lambda i: [b"BEGIN", *st(i), *commit],
            "psql, a round trip each": lambda i: [b"BEGIN", *st(i), *commit],
            "body": lambda i: [*b(i), *st(i), *commit],
            "body, timeouts by set_config": lambda i: [*self.begin_set_config(i), *st(i), *commit],
            "as up sends it (write prepared by the store)": lambda i: [
                *b(i),
                *st(i),
                self.up_write(i),
                *commit,
            ],
            "as up sends a batch (32 a message)": self.batch_member,
            "full": lambda i: [*b(i), *st(i), self.write(i), *commit],
            "+applied": lambda i: [*b(i), *st(i), self.applied(i), *commit],
            "+log": lambda i: [*b(i), *st(i), self.log(i), *commit],
            "+progress": lambda i: [*b(i), *st(i), self.progress(i), *commit],
            "+expect": lambda i: [*b(i), *st(i), self.expect(i), *commit],
            "+write, no guard": lambda i: [*b(i), *st(i), self.unguarded(i), *commit],
            "write only": lambda i: [*b(i), self.write(i), *commit],
            "full, write prepared": lambda i: [*b(i), *st(i), self.executed(i), *commit],
            "full, write as a function": lambda i: [*b(i), *st(i), self.called(i), *commit],
        }


def build_variants(conn: Any, store: Any, run_id: str) -> dict[str, Parts]:
    """Variant name -> a function of migration i returning the parts of its one message."""
    return Messages(conn, store, run_id).variants()


def _on_cpu_ns(pid: int) -> int:
    """Nanoseconds process ``pid`` has run on a CPU (the scheduler's own count, not ticks)."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def _server_pids(backend: int) -> list[int]:
    """The server's other processes: the children of the backend's parent (the postmaster)."""
    parent = int(Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()[1])
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == backend:
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent:
            pids.append(int(entry.name))
    return pids


@dataclass
class Loop:
    """One loop of ``count`` messages: wall, the backend's and the rest of the server's CPU."""

    wall: float
    backend_cpu: float
    others_cpu: float
    client_cpu: float
    wal: int


def one_loop(server: Server, variant: str, count: int, label: str) -> Loop:
    """Wall, CPU and WAL bytes of ``count`` messages of ``variant`` on a fresh database."""
    import psycopg

    from pgshift.db.execute import run_parts
    from pgshift.db.store import PostgresHistoryStore

    db = server.fresh_db(label)
    try:
        with psycopg.connect(server.url(db), autocommit=True) as conn:
            store = PostgresHistoryStore(SCHEMA)
            store.upgrade(conn)
            conn.execute("CHECKPOINT")
            if variant == "full, write prepared":
                conn.execute(PREPARE.encode())
            if variant == "full, write as a function":
                conn.execute(FUNCTION.encode())
            parts = build_variants(conn, store, str(uuid.uuid4()))[variant]
            messages = [parts(i) for i in range(count)]  # built before the clock starts
            lsn = "SELECT pg_current_wal_lsn()"
            wal0 = conn.execute(lsn).fetchone()[0]  # type: ignore[index]
            backend = conn.info.backend_pid
            others = _server_pids(backend)
            cpu0 = _on_cpu_ns(backend), sum(map(_on_cpu_ns, others)), time.process_time()
            began = time.perf_counter()
            if variant in ONE_BY_ONE:
                messages = [[part] for message in messages for part in message]
            if variant in BATCHED:
                size = BATCHED[variant]
                groups = [messages[k : k + size] for k in range(0, count, size)]
                messages = [[part for one in group for part in one] for group in groups]
            for message in messages:
                run_parts(conn, message)
            took = time.perf_counter() - began
            cpu1 = _on_cpu_ns(backend), sum(map(_on_cpu_ns, others)), time.process_time()
            wal = conn.execute(f"SELECT pg_wal_lsn_diff(({lsn}), %s)", (wal0,)).fetchone()[0]  # type: ignore[index]
            applied = conn.execute("SELECT count(*) FROM pgshift.applied").fetchone()[0]  # type: ignore[index]
            if applied != (count if variant in WRITES else 0):
                sys.exit(f"bench: {variant} left {applied} applied rows after {count} migrations")
            return Loop(
                took,
                (cpu1[0] - cpu0[0]) / 1e9,
                (cpu1[1] - cpu0[1]) / 1e9,
                cpu1[2] - cpu0[2],
                int(wal),
            )
    finally:
        server.drop_db(db)


#: The history write and its parts, as the server times them (EXPLAIN ANALYZE).
WRITE_PARTS = {
    "full": "write",
    "+write, no guard": "unguarded",
    "+applied": "applied",
    "+log": "log",
    "+progress": "progress",
    "+expect": "expect",
}


def server_timings(server: Server, count: int, repeats: int) -> dict[str, tuple[float, float, int]]:
    """Part -> median planning ms, execution ms and WAL bytes, as EXPLAIN (ANALYZE) reports.

    On a database that has applied ``count`` migrations (so the history tables are not empty),
    each part runs ``repeats`` times, each in its own transaction that is rolled back.
    """
    import psycopg

    from pgshift.db.execute import run_parts
    from pgshift.db.store import PostgresHistoryStore

    db = server.fresh_db("explain")
    found: dict[str, list[tuple[float, float, int]]] = {}
    try:
        with psycopg.connect(server.url(db), autocommit=True) as conn:
            store = PostgresHistoryStore(SCHEMA)
            store.upgrade(conn)
            variants = build_variants(conn, store, str(uuid.uuid4()))
            for i in range(count):
                run_parts(conn, variants["full"](i))
            conn.execute("CHECKPOINT")
            for _ in range(repeats):
                for name in WRITE_PARTS:
                    statement = variants[name](count + 1)[-2]  # the part before COMMIT
                    conn.execute(b"BEGIN")
                    plan = conn.execute(
                        b"EXPLAIN (ANALYZE, BUFFERS, WAL, FORMAT JSON) " + statement
                    ).fetchone()[0][0]  # type: ignore[index]
                    conn.execute(b"ROLLBACK")
                    wal = int(plan["Plan"].get("WAL Bytes", 0))
                    found.setdefault(name, []).append(
                        (plan["Planning Time"], plan["Execution Time"], wal)
                    )
    finally:
        server.drop_db(db)
    return {
        name: (
            statistics.median(t[0] for t in values),
            statistics.median(t[1] for t in values),
            int(statistics.median(t[2] for t in values)),
        )
        for name, values in found.items()
    }


def report(
    servers: list[Server],
    names: list[str],
    loops: dict[tuple[str, str], list[Loop]],
    count: int,
    rounds: int,
) -> str:
    """The table: per server and variant, medians per migration (min-max of the wall)."""
    lines = [
        f"{count} migrations per loop, {rounds} rounds; medians per migration over the rounds;"
        " CPU from /proc/<pid>/schedstat",
        "",
        "| server | variant | wall ms (min-max) | wall vs body | backend CPU ms | CPU vs body"
        " | other server processes CPU ms | client CPU ms | WAL bytes |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]

    def med(label: str, name: str, field: str) -> float:
        values = [getattr(loop, field) for loop in loops[(label, name)]]
        return statistics.median(values) * (1 if field == "wal" else 1000) / count

    for server in servers:
        label = server.label()
        wall0 = med(label, "body", "wall") if "body" in names else 0.0
        cpu0 = med(label, "body", "backend_cpu") if "body" in names else 0.0
        for name in names:
            walls = [loop.wall * 1000 / count for loop in loops[(label, name)]]
            wall, cpu = med(label, name, "wall"), med(label, name, "backend_cpu")
            lines.append(
                f"| {label} | {name} | {wall:.3f} ({min(walls):.3f}-{max(walls):.3f})"
                f" | {wall - wall0:+.3f} | {cpu:.3f} | {cpu - cpu0:+.3f}"
                f" | {med(label, name, 'others_cpu'):.3f} | {med(label, name, 'client_cpu'):.3f}"
                f" | {med(label, name, 'wal'):.0f} |"
            )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int, default=300, help="migrations per loop")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--server", choices=["embedded", "system", "both"], default="both")
    p.add_argument("--variants", nargs="*", help="only these variants")
    p.add_argument("--explain", type=int, default=200, help="EXPLAIN ANALYZE repeats (0: none)")
    p.add_argument("--work-parent", type=Path, default=default_work_parent())
    args = p.parse_args()
    work = work_folder(args.work_parent, keep=False)
    servers = start_servers(args.server, work)
    names = list(build_variants(None, None, "").keys())
    if args.variants:
        names = [n for n in names if n in args.variants]
    loops: dict[tuple[str, str], list[Loop]] = {}
    rng = random.Random(18)
    for r in range(args.rounds):
        for server in servers:
            order = names[:]
            rng.shuffle(order)
            for name in order:
                loop = one_loop(server, name, args.count, f"r{r}")
                loops.setdefault((server.label(), name), []).append(loop)
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    out = [
        *heading(SECTION, command_line("bench_history_write.py")),
        f"- machine: {machine()}",
        *(f"- server: {server.describe()}" for server in servers),
        "",
        report(servers, names, loops, args.count, args.rounds),
    ]
    if args.explain:
        out += [
            "",
            "The write's parts as the server times them: EXPLAIN (ANALYZE, BUFFERS, WAL) in a"
            f" rolled-back transaction, after {args.count} applied, median of {args.explain}",
            "",
            "| server | part | planning ms | execution ms | WAL bytes (plan's top node) |",
            "|---|---|---:|---:|---:|",
        ]
        for server in servers:
            for name, (plan, run, wal) in server_timings(server, args.count, args.explain).items():
                out.append(f"| {server.label()} | {name} | {plan:.3f} | {run:.3f} | {wal} |")
    print("\n".join(out))


if __name__ == "__main__":
    main()
