"""The comparison behind `validate --trace` (ops/trace.py), on traces written here: no server."""

from __future__ import annotations

from pgshift.lint.finding import Finding
from pgshift.ops.trace import TracedLock, TracedStatement, TraceReport, disagreements, sql_mode

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


def test_agreement_is_silent() -> None:
    stmt = _stmt("x", (AE,), predicted=("ACCESS EXCLUSIVE on users",), rewritten=("public.users",))
    assert _messages(stmt, static=(_finding("add-column-rewrite"),)) == []


def test_a_different_lock_mode_names_both_sides() -> None:
    stmt = _stmt("x", (SUE,), predicted=("ACCESS EXCLUSIVE on users",))
    assert _messages(stmt) == [
        "predicted ACCESS EXCLUSIVE on users; the server held SHARE UPDATE EXCLUSIVE on it"
    ]
    assert _messages(_stmt("x", (), predicted=("SHARE on app.users",))) == [
        "predicted SHARE on app.users; the server held no lock on it"
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
    alone = _stmt("x", (), ran_alone=True, predicted=("SHARE on users",))
    assert _messages(alone, static=(_finding("require-concurrent-index"),)) == []


def test_tables_created_in_the_same_file_are_not_rewrite_surprises() -> None:
    create = _stmt("create", (AE,), line=1, created=("public.users",))
    rewrite = _stmt("alter", (AE,), rewritten=("public.users",))
    assert _messages(create, rewrite) == []
    other_file = _stmt("alter", (AE,), file="m/other.sql", rewritten=("public.users",))
    assert len(_messages(create, other_file)) == 1


def test_a_failed_statement_is_not_compared() -> None:
    stmt = _stmt("x", (), predicted=("SHARE on users",), error="relation does not exist")
    assert _messages(stmt) == []
