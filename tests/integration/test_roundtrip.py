"""`validate --roundtrip` on real PostgreSQL: good, leaky, broken and failing rollbacks.

The last tests keep the scratch database to show that `up`'s Runner did the work there.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.plugins.pg import PgServer
from tests.plugins.project import ProjectMaker, migration_text, rollback_text
from tests.support import query, run_cli, tables

from pgshift.ops import roundtrip as roundtrip_module

V1, V2, V3, V4 = "20250101000000", "20250102000000", "20250103000000", "20250104000000"


def _pair(version: str, description: str, sql: str, undo: str) -> dict[str, str]:
    return {
        f"{version}_{description}.sql": migration_text(version, description, sql),
        f"{version}_{description}_rollback.sql": rollback_text(version, description, undo),
    }


USERS = _pair(
    V1,
    "add_users",
    "CREATE TABLE users (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text);\n"
    "CREATE INDEX CONCURRENTLY users_email_idx ON users (email);",
    "DROP INDEX CONCURRENTLY users_email_idx;\nDROP TABLE users;",
)


def _findings(result_json: dict[str, object]) -> list[tuple[str, str, str]]:
    items = result_json["findings"]
    assert isinstance(items, list)
    return [(Path(f["file"]).name, f["code"], f["message"]) for f in items]


def _roundtrip_databases(server: PgServer) -> list[str]:
    rows = query(
        server.admin_url,
        "SELECT datname FROM pg_database WHERE datname LIKE 'pgshift_scratch_roundtrip%'",
    )
    return [r[0] for r in rows]


def test_correct_rollbacks_pass_and_the_target_is_untouched(
    capsys: pytest.CaptureFixture[str],
    make_project: ProjectMaker,
    pg_server: PgServer,
    db_url: str,
) -> None:
    project = make_project(
        USERS
        | _pair(
            V2,
            "add_status",
            "CREATE TYPE status AS ENUM ('new', 'done');\n"
            "ALTER TABLE users ADD COLUMN status status NOT NULL DEFAULT 'new';",
            "ALTER TABLE users DROP COLUMN status;\nDROP TYPE status;",
        )
    )
    result = run_cli(
        capsys, project, db_url, "validate", "--roundtrip", "--json",
        "--scratch-url", pg_server.admin_url,
    )  # fmt: skip
    assert result.code == 0, result.out + result.err
    assert result.json() == {
        "ok": True,
        "findings": [],
        "roundtrip": {"ran": True, "ok": True, "problems": 0},  # a pass says that it ran
    }
    text = run_cli(
        capsys, project, db_url, "validate", "--roundtrip", "--scratch-url", pg_server.admin_url
    )
    assert text.code == 0 and "round trip: every migration applied, reverted" in text.out
    assert tables(db_url) == set()  # the target was never touched
    assert _roundtrip_databases(pg_server) == []  # the scratch database was dropped


def test_leaky_broken_and_failing_rollbacks_are_each_reported(
    capsys: pytest.CaptureFixture[str], make_project: ProjectMaker, pg_server: PgServer
) -> None:
    project = make_project(
        USERS
        # Leaves its table (and its index) behind.
        | _pair(
            V2,
            "add_prefs",
            "CREATE TABLE prefs (user_id bigint PRIMARY KEY, theme text);",
            "SELECT 1;",
        )
        # A rollback that does not parse.
        | _pair(V3, "add_orders", "CREATE TABLE orders (id bigint);", "DROP TABEL orders;")
        # A rollback that fails on the server; the round trip goes on after it.
        | _pair(
            V4,
            "add_nickname",
            "ALTER TABLE users ADD COLUMN nickname text;",
            "ALTER TABLE users DROP COLUMN nick;",
        )
    )
    result = run_cli(
        capsys, project, None, "validate", "--roundtrip", "--json",
        "--scratch-url", pg_server.admin_url,
    )  # fmt: skip
    assert result.code == 1
    found = _findings(result.json())
    by_code = {(name, code): message for name, code, message in found}
    leak = by_code[(f"{V2}_add_prefs_rollback.sql", "rollback-incomplete")]
    assert "left behind: table public.prefs" in leak
    assert "left behind: index public.prefs_pkey" in leak
    assert (f"{V3}_add_orders_rollback.sql", "invalid-file") in by_code
    assert "not tried" in by_code[(f"{V3}_add_orders_rollback.sql", "rollback-failed")]
    failed = by_code[(f"{V4}_add_nickname_rollback.sql", "rollback-failed")]
    assert 'column "nick" of relation "users" does not exist' in failed
    assert not any(name.startswith(V1) for name, _, _ in found)
    assert _roundtrip_databases(pg_server) == []


def test_reapply_after_rollback_is_checked(
    capsys: pytest.CaptureFixture[str], make_project: ProjectMaker, pg_server: PgServer
) -> None:
    project = make_project(
        USERS
        | _pair(
            V2,
            "add_settings",
            "CREATE TABLE settings (key text PRIMARY KEY, value text);",
            "DROP TABLE settings;",
        )
        # The schema comes back, but the row the rollback forgot makes the re-apply fail.
        | _pair(
            V3,
            "seed_theme",
            "INSERT INTO settings (key, value) VALUES ('theme', 'dark');",
            "SELECT 1;",
        )
    )
    result = run_cli(
        capsys, project, None, "validate", "--roundtrip", "--json",
        "--scratch-url", pg_server.admin_url,
    )  # fmt: skip
    found = _findings(result.json())
    assert [(name, code) for name, code, _ in found] == [
        (f"{V3}_seed_theme.sql", "reapply-mismatch")
    ]
    assert "duplicate key" in found[0][2]
    assert result.code == 1


def test_a_migration_failing_on_a_fresh_database_stops_the_round_trip(
    capsys: pytest.CaptureFixture[str], make_project: ProjectMaker, pg_server: PgServer
) -> None:
    project = make_project(
        _pair(V1, "index_orders", "CREATE INDEX CONCURRENTLY o_idx ON orders (id);", "SELECT 1;")
        | USERS_AT_V2
    )
    result = run_cli(
        capsys, project, None, "validate", "--roundtrip", "--json",
        "--scratch-url", pg_server.admin_url,
    )  # fmt: skip
    found = _findings(result.json())
    assert [(name, code) for name, code, _ in found] == [(f"{V1}_index_orders.sql", "apply-failed")]
    assert 'relation "orders" does not exist' in found[0][2]


USERS_AT_V2 = _pair(
    V2, "add_users", "CREATE TABLE users (id bigint PRIMARY KEY);", "DROP TABLE users;"
)


# -- the executor is up's: the Runner, on the scratch database ---------------------------------


@pytest.fixture
def kept_scratch(monkeypatch: pytest.MonkeyPatch, pg_server: PgServer) -> Iterator[list[str]]:
    """Keep the scratch databases a round trip creates, to read what the runner did in them.

    Their sessions are still closed as usual; the databases are dropped after the test.
    """
    kept: list[str] = []

    def keep(self: roundtrip_module._Scratch) -> None:
        if self.target is not None:
            self.target.close()
            self.target = None
        if self.name:
            kept.append(self.name)
            self.name = ""

    monkeypatch.setattr(roundtrip_module._Scratch, "drop", keep)
    try:
        yield kept
    finally:
        for name in kept:
            pg_server.drop_database(name)


def _line_of(text: str, marker: str) -> int:
    """The 1-based line of ``text`` where ``marker`` first appears."""
    return next(n for n, body in enumerate(text.splitlines(), 1) if marker in body)


def test_each_migration_is_applied_reverted_and_reapplied_by_ups_runner(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    make_project: ProjectMaker,
    pg_server: PgServer,
    kept_scratch: list[str],
) -> None:
    # Transactional statements around a concurrent build, both ways: `up` runs them as three
    # chunks (a transaction, the build alone, a transaction) and records progress in between.
    project = make_project(
        _pair(
            V1,
            "add_accounts",
            "CREATE TABLE accounts (id bigint PRIMARY KEY, email text);\n"
            "CREATE INDEX CONCURRENTLY accounts_email_idx ON accounts (email);\n"
            "ALTER TABLE accounts ADD COLUMN name text;",
            "ALTER TABLE accounts DROP COLUMN name;\n"
            "DROP INDEX CONCURRENTLY accounts_email_idx;\n"
            "DROP TABLE accounts;",
        )
    )
    # A history schema of another name: the runner's, and still left out of the fingerprints.
    monkeypatch.setenv("PGSHIFT_SCHEMA", "migration_history")
    result = run_cli(
        capsys, project, None, "validate", "--roundtrip", "--json",
        "--scratch-url", pg_server.admin_url,
    )  # fmt: skip
    assert result.code == 0, result.out + result.err
    assert {k: v for k, v in result.json().items() if k != "roundtrip"} == {
        "ok": True,
        "findings": [],
    }
    (scratch,) = kept_scratch  # nothing failed, so nothing was rebuilt
    url = pg_server.url(scratch)
    steps = query(
        url,
        "SELECT event, version FROM migration_history.log"
        " WHERE event IN ('migration_started', 'migration_applied', 'migration_reverted')"
        " ORDER BY id",
    )
    # The runner's own history: each pass started as a multi-chunk step and recorded its end.
    assert steps == [
        ("migration_started", V1),
        ("migration_applied", V1),
        ("migration_started", V1),
        ("migration_reverted", V1),
        ("migration_started", V1),
        ("migration_applied", V1),
    ]
    assert query(url, "SELECT version FROM migration_history.applied") == [(V1,)]
    assert query(url, "SELECT count(*) FROM migration_history.progress") == [(0,)]
    assert query(
        url, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'accounts_email_idx'::regclass"
    ) == [(True,)]


COUNTER = _pair(
    V1,
    "add_counter",
    "CREATE SEQUENCE attempts;\nCREATE TABLE t (id int PRIMARY KEY);",
    "DROP TABLE t;\nDROP SEQUENCE attempts;",
)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            "SELECT nextval('attempts');\n"
            "INSERT INTO t (id) VALUES (1);\n"
            "UPDATE t\n"
            "   SET nosuch = 2\n"
            " WHERE id = 1;",
            id="one-transaction",
        ),
        pytest.param(
            "SELECT nextval('attempts');\n"
            "CREATE INDEX CONCURRENTLY t_id_idx ON t (id);\n"
            "UPDATE t\n"
            "   SET nosuch = 2\n"
            " WHERE id = 1;",
            id="after-a-concurrent-build",
        ),
    ],
)
def test_a_failing_statement_is_named_at_its_line_and_ran_once(
    body: str,
    capsys: pytest.CaptureFixture[str],
    make_project: ProjectMaker,
    pg_server: PgServer,
    kept_scratch: list[str],
) -> None:
    failing = _pair(V2, "break_it", body, "SELECT 1;")
    project = make_project(COUNTER | failing)
    result = run_cli(
        capsys, project, None, "validate", "--roundtrip", "--json",
        "--scratch-url", pg_server.admin_url,
    )  # fmt: skip
    assert result.code == 1
    findings = [f for f in result.json()["findings"] if f["code"] == "apply-failed"]
    assert len(findings) == 1, findings
    (finding,) = findings
    name = f"{V2}_break_it.sql"
    assert Path(finding["file"]).name == name
    # The server's error position, refined inside the statement: the line of `nosuch`.
    assert finding["line"] == _line_of(failing[name], "SET nosuch")
    assert 'column "nosuch" of relation "t" does not exist' in finding["message"]
    (scratch,) = kept_scratch
    url = pg_server.url(scratch)
    # One attempt, so the statements before the failing one ran exactly once.
    assert query(url, "SELECT last_value, is_called FROM attempts") == [(1, True)]
    failed = query(
        url, "SELECT (detail->>'line')::int FROM pgshift.log WHERE event = 'migration_failed'"
    )
    assert failed == [(finding["line"],)]


def test_lock_timeouts_are_retried_as_up_retries_them(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    make_project: ProjectMaker,
    pg_server: PgServer,
    kept_scratch: list[str],
) -> None:
    # A statement that always fails like a lock timeout (SQLSTATE 55P03): `up` rolls the
    # transaction back and tries the whole of it again with backoff until the budget is spent.
    busy = _pair(
        V2,
        "always_busy",
        "SELECT nextval('attempts');\n"
        "DO $$ BEGIN RAISE EXCEPTION 'busy' USING ERRCODE = 'lock_not_available'; END $$;",
        "SELECT 1;",
    )
    project = make_project(COUNTER | busy)
    monkeypatch.setenv("PGSHIFT_LOCK_TIMEOUT", "50")
    monkeypatch.setenv("PGSHIFT_LOCK_RETRY_TOTAL", "1500")
    result = run_cli(
        capsys, project, None, "validate", "--roundtrip", "--json",
        "--scratch-url", pg_server.admin_url,
    )  # fmt: skip
    assert result.code == 1
    (finding,) = [f for f in result.json()["findings"] if f["code"] == "apply-failed"]
    name = f"{V2}_always_busy.sql"
    assert Path(finding["file"]).name == name
    assert finding["line"] == _line_of(busy[name], "RAISE EXCEPTION")
    assert "could not take the locks it needs within 1500 ms" in finding["message"]
    (scratch,) = kept_scratch
    url = pg_server.url(scratch)
    retries = query(url, "SELECT count(*) FROM pgshift.log WHERE event = 'lock_retry'")[0][0]
    assert retries >= 1
    # Each attempt ran the transaction once: the first try and one per logged retry.
    assert query(url, "SELECT last_value FROM attempts") == [(retries + 1,)]
    assert f"({retries + 1} attempts" in finding["message"]


def test_an_irreversible_migration_is_applied_and_never_reverted(
    capsys: pytest.CaptureFixture[str],
    make_project: ProjectMaker,
    pg_server: PgServer,
    kept_scratch: list[str],
) -> None:
    purge = f"{V1}_purge_sessions.sql"
    project = make_project(
        {
            purge: migration_text(
                V1,
                "purge_sessions",
                "CREATE TABLE sessions (id bigint PRIMARY KEY);",
                extra_header=["@lint-ignore: missing-rollback"],
            )
        }
        | _pair(
            V2,
            "add_token",
            "ALTER TABLE sessions ADD COLUMN token text;",
            "ALTER TABLE sessions DROP COLUMN token;",
        )
    )
    result = run_cli(
        capsys, project, None, "validate", "--roundtrip", "--json",
        "--scratch-url", pg_server.admin_url,
    )  # fmt: skip
    assert result.code == 0, result.out + result.err
    (scratch,) = kept_scratch
    events = query(
        pg_server.url(scratch),
        "SELECT event, version FROM pgshift.log"
        " WHERE event IN ('migration_applied', 'migration_reverted') ORDER BY id",
    )
    assert events == [
        ("migration_applied", V1),
        ("migration_applied", V2),
        ("migration_reverted", V2),
        ("migration_applied", V2),
    ]
