"""One suite, two stores: the PostgreSQL history store and the in-memory one keep one contract.

The in-memory store is the contract written in plain Python (history.py); the PostgreSQL store
must read back exactly what it does after the same writes, SQL and all.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from psycopg import sql

from pgshift.db.store import PostgresHistoryStore
from pgshift.history import AppliedMigration, History, HistoryStore, MemoryHistoryStore, Progress

A, B, C = "20250101000000", "20250102000000", "20250103000000"
RUN = "7d4c2a1e-0000-4000-8000-000000000001"
LATER_RUN = "7d4c2a1e-0000-4000-8000-000000000002"


@pytest.fixture(params=["memory", "postgres"])
def store(request: pytest.FixtureRequest, db_url: str) -> Iterator[tuple[HistoryStore, Any]]:
    """Each store with its session (the memory one runs beside each server too; it is cheap)."""
    if request.param == "memory":
        yield MemoryHistoryStore(), None
        return
    with psycopg.connect(db_url, autocommit=True) as conn:
        pg = PostgresHistoryStore("pgshift")
        pg.upgrade(conn)
        yield pg, conn


def row(version: str, run_id: str = RUN) -> AppliedMigration:
    return AppliedMigration(
        version=version,
        description=f"m{version[-6:]}",
        checksum="c" * 64,
        rollback_checksum=None,
        applied_at=None,  # type: ignore[arg-type]  # the store's clock
        duration_ms=12,
        applied_by="tester",
        host="box",
        run_id=run_id,
        metadata={"risk-level": "low"},
    )


def progress(version: str, done: int, action: str = "apply") -> Progress:
    return Progress(version, "c" * 64, "p" * 64, done, RUN, None, action)  # type: ignore[arg-type]


def comparable(history: History) -> tuple[Any, ...]:
    """History without the clocks, which each store sets itself."""
    applied = tuple(
        (a.version, a.description, a.checksum, a.applied_by, a.run_id, dict(a.metadata))
        for a in history.applied
    )
    moving = tuple((p.version, p.statements_done, p.action, p.run_id) for p in history.in_progress)
    return applied, moving, history.failed


def test_an_untouched_store_reads_empty(store: tuple[HistoryStore, Any]) -> None:
    s, session = store
    assert comparable(s.read(session)) == comparable(History())
    assert s.last_up_run(session) is None


def test_applied_rows_and_progress(store: tuple[HistoryStore, Any]) -> None:
    s, session = store
    s.save_progress(session, progress(A, 1))
    s.save_progress(session, progress(A, 2))  # newest wins, one row per version
    s.save_progress(session, progress(B, 1, "revert"))
    history = s.read(session)
    assert [(p.version, p.statements_done, p.action) for p in history.in_progress] == [
        (A, 2, "apply"),
        (B, 1, "revert"),
    ]
    s.record_applied(session, row(A))
    history = s.read(session)
    assert comparable(history)[0] == (
        (A, "m000000", "c" * 64, "tester", RUN, {"risk-level": "low"}),
    )
    assert history.applied[0].applied_at is not None
    # The given duration, plus whatever the store's own transaction measured so far.
    assert 12 <= history.applied[0].duration_ms < 5000
    assert [p.version for p in history.in_progress] == [B]  # applying forgets A's progress
    s.clear_progress(session, B)
    assert s.read(session).in_progress == ()


def test_reverting_removes_the_row_and_its_progress(store: tuple[HistoryStore, Any]) -> None:
    s, session = store
    s.record_applied(session, row(A))
    s.record_applied(session, row(B))
    s.save_progress(session, progress(B, 1, "revert"))
    s.record_reverted(session, B, RUN, {"why": "test"})
    history = s.read(session)
    assert [a.version for a in history.applied] == [A]
    assert history.in_progress == ()


def test_failed_is_the_newest_decisive_event(store: tuple[HistoryStore, Any]) -> None:
    s, session = store
    s.record_failed(session, RUN, A, {"sqlstate": "42P01"})
    s.record_failed(session, RUN, B, {"sqlstate": "23505"})
    s.record_applied(session, row(B, LATER_RUN))  # B succeeded on a later try
    s.record_applied(session, row(C))
    s.record_failed(session, RUN, C, {"sqlstate": "x"}, action="revert")  # revert failures
    s.log(session, RUN, "lock_retry", A, {"attempt": 1})  # other events do not decide
    assert s.read(session).failed == frozenset({A})
    s.record_applied(session, row(A, LATER_RUN))
    s.record_reverted(session, A, LATER_RUN)
    assert s.read(session).failed == frozenset()  # reverted after it applied: pending, not failed


def test_last_up_run_skips_rollback_runs(store: tuple[HistoryStore, Any]) -> None:
    s, session = store
    s.log(session, RUN, "run_started", None, {"steps": [[A, "apply"], [B, "apply"]]})
    s.log(session, LATER_RUN, "run_started", None, {"steps": [[B, "revert"]]})
    s.log(session, None, "backup_taken", None, {"at": datetime.now(UTC).isoformat()})
    assert s.last_up_run(session) == RUN


def test_the_rollback_sql_is_kept_with_its_row(store: tuple[HistoryStore, Any]) -> None:
    """A downgrade reverts with the stored text, so it must come back byte for byte."""
    s, session = store
    text = '-- Rollback: x_rollback.sql\r\nDROP TABLE "It\'s";\n-- 100% sure, $$ and \\ too\n'
    s.record_applied(session, replace(row(A), rollback_checksum="r" * 64, rollback_sql=text))
    s.record_applied(session, row(B))  # no rollback file: nothing stored
    applied = s.read(session).applied_versions()
    assert (applied[A].rollback_checksum, applied[A].rollback_sql) == ("r" * 64, text)
    assert applied[B].rollback_sql is None


def test_every_bound_literal_comes_back_as_written(db_url: str) -> None:
    """The writes bind their values as literals into one message (db/store.py _compose): text
    with quotes, backslashes, percent signs and non-ASCII, NULLs, large numbers and JSON
    must read back exactly, in a history schema whose name needs quoting."""
    odd = "It's 100% \\ é \u2603 $$ %(version)s {s}"
    with psycopg.connect(db_url, autocommit=True) as conn:
        pg = PostgresHistoryStore('odd "schema"')
        pg.upgrade(conn)
        written = replace(
            row(A),
            description=odd,
            applied_by=odd,
            host=None,
            duration_ms=2**40,
            rollback_sql=odd,
            rollback_checksum="r" * 64,
            metadata={"risk-level": odd, "nested": {"list": [1, None, odd]}},
        )
        pg.record_applied(conn, written, {"why": odd})
        pg.record_applied(conn, row(B))  # the second write reuses the composed template
        (got,) = [a for a in pg.read(conn).applied if a.version == A]
        detail = conn.execute(
            sql.SQL("SELECT detail->>'why' FROM {}.log WHERE version = %s").format(
                sql.Identifier(pg.schema)
            ),
            (A,),
        ).fetchone()
    assert (got.description, got.applied_by, got.host) == (odd, odd, None)
    assert (got.rollback_sql, dict(got.metadata)) == (odd, dict(written.metadata))
    assert got.duration_ms >= 2**40
    assert detail == (odd,)


def test_upgrading_from_version_1_keeps_old_rows_without_rollback_sql(db_url: str) -> None:
    """Rows applied before the column existed read back as NULL, before and after the upgrade.

    They still need their rollback file; and `status` on a history an older pgshift made must
    not fail because a newer column is not there yet.
    """
    from pgshift.db.store import schema_files

    pg = PostgresHistoryStore("old schema")  # a name that needs quoting, as any name may
    with psycopg.connect(db_url, autocommit=True) as conn:
        name = sql.Identifier(pg.schema)
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(name))
        conn.execute(
            sql.SQL(
                "CREATE TABLE {}.schema_version (version integer PRIMARY KEY,"
                " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            ).format(name)
        )
        number, first, body = schema_files()[0]
        with conn.transaction():
            conn.execute("SELECT set_config('search_path', %s, true)", (name.as_string(conn),))
            conn.execute(body.encode())
            conn.execute(
                sql.SQL("INSERT INTO {}.schema_version (version, name) VALUES (%s, %s)").format(
                    name
                ),
                (number, first),
            )
        conn.execute(
            sql.SQL(
                "INSERT INTO {}.applied (version, description, checksum, duration_ms,"
                " applied_by, run_id) VALUES (%s, 'old', %s, 1, 'tester', %s)"
            ).format(name),
            (A, "c" * 64, RUN),
        )
        # Read-only commands read it before anything upgrades it.
        assert pg.read(conn).applied_versions()[A].rollback_sql is None
        assert pg.upgrade(conn) == [
            "0002_rollback_sql.sql",
            "0003_expect.sql",
            "0004_backfill.sql",
            "0005_contract.sql",
        ]
        assert pg.upgrade(conn) == []  # idempotent
        assert pg.read(conn).applied_versions()[A].rollback_sql is None


def _catalog(conn: psycopg.Connection[Any], schema: str) -> list[tuple[Any, ...]]:
    """What a history schema holds, without names that differ by schema: its tables' columns
    (type, default, nullability), constraints, indexes and functions."""
    return conn.execute(
        """
        SELECT 'column', c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
               a.attnotnull::text,
               replace(coalesce(pg_get_expr(d.adbin, d.adrelid), ''), %(schema)s, '')
        FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
             LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
        WHERE c.relnamespace = to_regnamespace(quote_ident(%(schema)s)) AND c.relkind = 'r'
              AND NOT a.attisdropped
        UNION ALL
        SELECT 'constraint', (SELECT relname FROM pg_class WHERE oid = conrelid), conname,
               pg_get_constraintdef(oid), '', ''
        FROM pg_constraint WHERE connamespace = to_regnamespace(quote_ident(%(schema)s))
        UNION ALL
        SELECT 'index', tablename, indexname, replace(indexdef, %(schema)s, ''), '', ''
        FROM pg_indexes WHERE schemaname = %(schema)s
        UNION ALL
        SELECT 'function', proname, pg_get_function_arguments(oid), '', '', ''
        FROM pg_proc WHERE pronamespace = to_regnamespace(quote_ident(%(schema)s))
        ORDER BY 1, 2, 3
        """,
        {"schema": schema},
    ).fetchall()


def test_a_new_history_created_in_one_message_is_the_one_upgraded_file_by_file(
    db_url: str,
) -> None:
    """A new history is created whole in one message, its tenant schema with it; the tables,
    constraints, indexes and functions are those an old history upgraded one file at a time
    ends with, and every file is recorded in schema_version."""
    from pgshift.db.store import schema_files

    with psycopg.connect(db_url, autocommit=True) as conn:
        whole = PostgresHistoryStore("whole")
        names = [name for _, name, _ in schema_files()]
        assert whole.upgrade(conn, tenant_schema="tenant") == names
        assert conn.execute("SELECT to_regnamespace('tenant') IS NOT NULL").fetchone() == (True,)

        stepwise = PostgresHistoryStore("stepwise")
        conn.execute("CREATE SCHEMA stepwise")
        conn.execute(
            "CREATE TABLE stepwise.schema_version (version integer PRIMARY KEY,"
            " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        assert stepwise.upgrade(conn) == names  # each file in a transaction of its own

        assert _catalog(conn, "whole") == _catalog(conn, "stepwise")
        assert len(_catalog(conn, "whole")) > 40
        for schema in ("whole", "stepwise"):
            found = conn.execute(
                sql.SQL("SELECT name FROM {}.schema_version ORDER BY version").format(
                    sql.Identifier(schema)
                )
            ).fetchall()
            assert [n for (n,) in found] == names


def test_a_new_history_that_fails_half_way_leaves_nothing(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One message is one transaction: a file that fails after others ran takes back every
    table, and the tenant's and the history's schemas created with them."""
    from pgshift.db import store as store_module

    files = store_module.schema_files()
    broken = (*files, (99, "0099_broken.sql", "CREATE TABLE applied (version text);"))
    monkeypatch.setattr(store_module, "schema_files", lambda: list(broken))
    with psycopg.connect(db_url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.DuplicateTable):
            PostgresHistoryStore("halfway").upgrade(conn, tenant_schema="newco")
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert conn.execute(
            "SELECT to_regnamespace('halfway') IS NULL, to_regnamespace('newco') IS NULL"
        ).fetchone() == (True, True)
