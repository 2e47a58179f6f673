"""The comparison behind `validate --trace` (ops/trace.py), on traces written here: no server."""

from __future__ import annotations

from dataclasses import replace

from pgshift.lint.finding import Finding
from pgshift.ops.trace import TracedLock, TracedStatement, TraceReport, disagreements, sql_mode
from pgshift.source.locks import NAMED, Ref

FILE = "m/20250101000000_x.sql"


def _stmt(sql: str, locks: tuple[TracedLock, ...] = (), **kw: object) -> TracedStatement:
    defaults: dict[str, object] = {
        "file": FILE,
        "line": 5,
        "column": 1,
        "sql": sql,
        "ran_alone": False,
        "locks": locks,
        "rewritten": (),
        "predicted": (),
    }
    defaults.update(kw)
    return TracedStatement(**defaults)  # type: ignore[arg-type]


def _finding(code: str, line: int = 5) -> Finding:
    return Finding(code, "error", FILE, line, 1, "m", "h")


def _messages(*statements: TracedStatement, static: tuple[Finding, ...] = ()) -> list[str]:
    return [f.message for f in disagreements(TraceReport(statements, "migrations"), static)]


AE = TracedLock("public.users", "r", "ACCESS EXCLUSIVE")
SUE = TracedLock("public.users", "r", "SHARE UPDATE EXCLUSIVE")


def test_pg_locks_modes_read_as_the_manual_writes_them() -> None:
    assert sql_mode("AccessExclusiveLock") == "ACCESS EXCLUSIVE"
    assert sql_mode("ShareUpdateExclusiveLock") == "SHARE UPDATE EXCLUSIVE"
    assert sql_mode("ShareLock") == "SHARE"


def _named(*names: str) -> tuple[tuple[Ref, tuple[str, ...]], ...]:
    """The lookups db/trace.py makes for relations a statement names: users -> public.users."""
    return tuple((Ref(NAMED, (name,)), (f"public.{name}",)) for name in names)


def test_agreement_is_silent() -> None:
    stmt = _stmt(
        "ALTER TABLE users ADD COLUMN token uuid DEFAULT gen_random_uuid()",
        (AE,),
        rewritten=("public.users",),
        resolved=_named("users"),
    )
    assert _messages(stmt, static=(_finding("add-column-rewrite"),)) == []


def test_a_different_lock_mode_names_both_sides() -> None:
    stmt = _stmt("ALTER TABLE users ALTER COLUMN a SET NOT NULL", (SUE,), resolved=_named("users"))
    assert _messages(stmt) == [
        "the lock table says ACCESS EXCLUSIVE on public.users (table users); the server held"
        " SHARE UPDATE EXCLUSIVE"
    ]
    nothing = _stmt("CREATE INDEX i ON users (a)", (), resolved=_named("users"))
    assert _messages(nothing) == [
        "the lock table says SHARE on public.users (table users); the server held no lock"
    ]


def test_a_strong_lock_the_table_does_not_name_is_a_disagreement() -> None:
    orders = TracedLock("public.orders", "r", "ACCESS EXCLUSIVE")
    stmt = _stmt("ALTER TABLE users ADD COLUMN x int", (AE, orders), resolved=_named("users"))
    assert _messages(stmt) == [
        "the server also held ACCESS EXCLUSIVE on public.orders, which the lock table does not name"
    ]


def test_what_comes_from_tracing_is_no_disagreement() -> None:
    """The artifacts a trace of a real history showed, none of them a disagreement."""
    index = TracedLock("public.users_pkey", "i", "ACCESS EXCLUSIVE", owner="public.users")
    serial = TracedLock("public.users_id_seq", "S", "ACCESS EXCLUSIVE", owner="public.users")
    checked = TracedLock("public.teams", "r", "ROW SHARE")
    # an index and a sequence locked with their table, as strongly
    rewrite = _stmt(
        "ALTER TABLE users ALTER COLUMN id TYPE bigint",
        (AE, index, serial),
        resolved=_named("users"),
        rewritten=("public.users",),
    )
    # a foreign key check's weak lock on the table referenced
    insert = _stmt(
        "INSERT INTO users (team_id) VALUES (1)",
        (TracedLock("public.users", "r", "ROW EXCLUSIVE"), checked),
        resolved=_named("users"),
    )
    # a self-referencing foreign key: the referenced table is the table itself, locked more
    self_ref = _stmt(
        "ALTER TABLE users ADD COLUMN boss int REFERENCES users (id)",
        (AE,),
        resolved=_named("users"),
    )
    # row locks and the transaction's earlier ALTER are what these rules mean by blocking
    backfill = _stmt(
        "UPDATE users SET a = 1",
        (TracedLock("public.users", "r", "ROW EXCLUSIVE"),),
        resolved=_named("users"),
    )
    # TRUNCATE gives the table a new file by design: no rewrite to predict
    truncate = _stmt("TRUNCATE users", (AE,), resolved=_named("users"), rewritten=("public.users",))
    # a statement the lock table does not know makes no claim about other relations
    unknown = _stmt("CREATE EXTENSION hstore", (TracedLock("public.x", "r", "ACCESS EXCLUSIVE"),))
    static = (
        _finding("change-column-type"),
        _finding("backfill-in-ddl-transaction", line=20),
        _finding("delete-all-rows", line=20),
    )
    others = (insert, self_ref, truncate, unknown)
    statements = (rewrite, *(replace(o, line=30 + i) for i, o in enumerate(others)))
    assert _messages(*statements, replace(backfill, line=20), static=static) == []


def test_drop_trigger_takes_access_exclusive_and_the_trace_checks_it() -> None:
    sre = TracedLock("public.users", "r", "SHARE ROW EXCLUSIVE")
    assert _messages(_stmt("DROP TRIGGER tr ON users", (AE,), resolved=_named("users"))) == []
    assert _messages(_stmt("DROP TRIGGER tr ON users", (sre,), resolved=_named("users"))) == [
        "the lock table says ACCESS EXCLUSIVE on public.users (table users); the server held"
        " SHARE ROW EXCLUSIVE"
    ]


def test_the_servers_major_decides_where_they_differ() -> None:
    share = TracedLock("public.users", "r", "ACCESS SHARE")
    grant = "GRANT SELECT ON users TO PUBLIC"
    assert _messages(_stmt(grant, (), resolved=_named("users"), major=15)) == []
    assert _messages(_stmt(grant, (share,), resolved=_named("users"), major=18)) == []
    assert _messages(_stmt(grant, (), resolved=_named("users"), major=18)) == [
        "the lock table says ACCESS SHARE on public.users (table users); the server held no lock"
    ]


def test_rewrite_claims_against_relfilenodes() -> None:
    claimed = _stmt("x", (AE,))
    assert _messages(claimed, static=(_finding("change-column-type"),)) == [
        "change-column-type says it rewrites the table; no table was rewritten"
    ]
    unclaimed = _stmt("x", (AE,), rewritten=("public.users",))
    assert _messages(unclaimed) == ["no rule predicted a rewrite; the server rewrote public.users"]
    elsewhere = _finding("change-column-type", line=9)  # another statement's finding
    assert _messages(claimed, static=(elsewhere,)) == []


def test_a_blocking_claim_with_a_weak_lock() -> None:
    stmt = _stmt("x", (SUE,))
    assert _messages(stmt, static=(_finding("require-concurrent-index"),)) == [
        "require-concurrent-index says it blocks the table; the server held only"
        " SHARE UPDATE EXCLUSIVE"
    ]
    alone = _stmt("CREATE INDEX CONCURRENTLY i ON users (a)", (), ran_alone=True)
    assert _messages(alone, static=(_finding("require-concurrent-index"),)) == []


def test_tables_created_in_the_same_file_are_not_rewrite_surprises() -> None:
    create = _stmt("create", (AE,), line=1, created=("public.users",))
    rewrite = _stmt("alter", (AE,), rewritten=("public.users",))
    assert _messages(create, rewrite) == []
    other_file = _stmt("alter", (AE,), file="m/other.sql", rewritten=("public.users",))
    assert len(_messages(create, other_file)) == 1


def test_a_failed_statement_is_not_compared() -> None:
    stmt = _stmt("CREATE INDEX i ON users (a)", (), resolved=_named("users"), error="no users")
    assert _messages(stmt) == []
