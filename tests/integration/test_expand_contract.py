"""Expand and contract end to end on real servers (SPEC 15): `up` applies the expand phase of
an `@expand-contract` migration, the old and the new code work against the table at the same
time, `status` says expanded, `pgshift contract` leaves only the new shape, `rollback safe`
inside the window returns to the old shape with the new code's writes, and a later migration
that touches the expanded table is refused until contract.

Both code shapes run in threads on their own connections while the phases run, each checking
what it reads against what it wrote: a single error or mismatch fails the test.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

import pgshift
from pgshift.cli.main import main
from pgshift.config import load_settings
from pgshift.errors import InputError

V1, V2, V3 = "20260101000000", "20260102000000", "20260103000000"

TABLE = """-- Description: accounts
CREATE TABLE accounts (
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

ROWS = 20_000


def _write(folder: Path, version: str, name: str, sql: str, rollback: str) -> None:
    (folder / f"{version}_{name}.sql").write_text(sql)
    (folder / f"{version}_{name}_rollback.sql").write_text(rollback)


@pytest.fixture
def project(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "migrations"
    folder.mkdir()
    _write(folder, V1, "accounts", TABLE, "DROP TABLE accounts;\n")
    _write(
        folder, V2, "rename_and_widen", EXPAND,
        "ALTER TABLE accounts RENAME COLUMN full_name TO name;\n"
        "ALTER TABLE accounts ALTER COLUMN amount TYPE integer;\n",
    )  # fmt: skip
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("DB_BACKUP_ENABLED", "false")
    assert main(["up", "--yes", "--target", V1]) == 0
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO accounts (name, amount) SELECT 'n' || g, g FROM generate_series(1, %s) g",
            (ROWS,),
        )
    yield folder


class Workload(threading.Thread):
    """One shape's code: inserts, updates, upserts with RETURNING, deletes and reads, each
    checked against what this workload wrote last."""

    def __init__(self, url: str, column: str, tag: str) -> None:
        super().__init__(daemon=True)
        self.url, self.column, self.tag = url, column, tag
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.operations = 0
        self.reprepared = 0  # statements prepared before a type swap, prepared again once

    def _q(self, conn: psycopg.Connection, sql: str, params: tuple[object, ...]) -> psycopg.Cursor:
        """Run ``sql`` as this shape's code would: psycopg prepares it after 5 executions. A
        statement prepared before contract's type swap that returns the retyped column fails
        once with "cached plan must not change result type"; the documented remedy is
        DEALLOCATE ALL (psycopg then forgets its prepared statements) and running it again."""
        try:
            return conn.execute(sql, params)
        except psycopg.errors.FeatureNotSupported as exc:
            if "cached plan must not change result type" not in str(exc):
                raise
            self.reprepared += 1
            conn.execute("DEALLOCATE ALL")
            return conn.execute(sql, params)

    def run(self) -> None:
        c = self.column
        try:
            with psycopg.connect(self.url, autocommit=True) as conn:
                i = 0
                while not self.stop.is_set():
                    i += 1
                    key = f"{self.tag}-{i}"
                    row = self._q(
                        conn,
                        f"INSERT INTO accounts ({c}, amount) VALUES (%s, %s) RETURNING id, {c}",
                        (key, i),
                    ).fetchone()
                    assert row is not None and row[1] == key
                    self._q(conn, "UPDATE accounts SET amount = %s WHERE id = %s", (i + 1, row[0]))
                    got = self._q(
                        conn,
                        f"INSERT INTO accounts ({c}, amount) VALUES (%s, %s) ON CONFLICT ({c})"
                        f" DO UPDATE SET amount = excluded.amount RETURNING {c}, amount",
                        (key, i + 2),
                    ).fetchone()
                    if got != (key, i + 2):
                        self.errors.append(f"upsert returned {got}")
                    read = self._q(
                        conn, f"SELECT {c}, amount FROM accounts WHERE id = %s", (row[0],)
                    ).fetchone()
                    if read != (key, i + 2):
                        self.errors.append(f"read {read}, wrote {(key, i + 2)}")
                    if i % 3 == 0:
                        self._q(conn, "DELETE FROM accounts WHERE id = %s", (row[0],))
                    self.operations += 1
        except Exception as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")

    def finish(self) -> None:
        self.stop.set()
        self.join(timeout=30)
        assert self.errors == [], self.errors[:5]
        assert self.operations > 0


def _columns(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attrelid = 'accounts'::regclass AND attnum > 0 AND NOT attisdropped"
        ).fetchall()
    return dict(rows)


def _leftovers(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT relname FROM pg_class WHERE relname LIKE '%pgshift%'"
                " AND relnamespace <> 'pgshift'::regnamespace"
                " UNION ALL SELECT tgname FROM pg_trigger WHERE tgname LIKE '%pgshift%'"
                " UNION ALL SELECT proname FROM pg_proc WHERE proname LIKE '%pgshift%'"
                " AND pronamespace <> 'pgshift'::regnamespace"
                " UNION ALL SELECT conname FROM pg_constraint WHERE conname LIKE '%pgshift%'"
            ).fetchall()
        ]


def test_both_shapes_work_through_expand_and_contract(
    project: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    old = Workload(db_url, "name", "old")
    old.start()
    assert main(["up", "--yes"]) == 0
    new = Workload(db_url, "full_name", "new")
    new.start()
    capsys.readouterr()
    assert main(["status", "--json"]) == 0
    states = {m["version"]: m["state"] for m in json.loads(capsys.readouterr().out)["migrations"]}
    assert states[V2] == "expanded"
    with psycopg.connect(db_url) as conn:
        differ = conn.execute(
            f"SELECT count(*) FROM accounts WHERE name IS DISTINCT FROM full_name"
            f" OR amount_pgshift_new_{V2} IS DISTINCT FROM amount"
        ).fetchone()
    assert differ == (0,)
    old.finish()
    assert old.reprepared == 0  # nothing the old code reads changed type while it ran
    assert main(["contract", "--yes"]) == 0
    new.finish()
    # Only the statements that return the retyped column, each at most once: the upsert and
    # the read (the first INSERT returns id and the renamed column, whose type stays).
    assert new.reprepared <= 2
    assert _columns(db_url) == {"id": "bigint", "full_name": "text", "amount": "bigint"}
    assert _leftovers(db_url) == []
    capsys.readouterr()
    assert main(["status", "--json"]) == 0
    states = {m["version"]: m["state"] for m in json.loads(capsys.readouterr().out)["migrations"]}
    assert states[V2] == "applied"
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM accounts WHERE id <= %s", (ROWS,)).fetchone() == (
            ROWS,
        )


def test_rollback_safe_inside_the_window_keeps_the_new_codes_writes(
    project: Path, db_url: str
) -> None:
    before = _columns(db_url)
    pgshift.up(load_settings(), backup=False)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO accounts (full_name, amount) VALUES ('from-new', 5)")
        conn.execute("UPDATE accounts SET full_name = 'renamed' WHERE id = 1")
    assert main(["rollback", "safe", "--yes"]) == 0
    assert _columns(db_url) == before
    assert _leftovers(db_url) == []
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT amount FROM accounts WHERE name = 'from-new'").fetchone() == (
            5,
        )
        assert conn.execute("SELECT name FROM accounts WHERE id = 1").fetchone() == ("renamed",)


def test_a_later_migration_on_the_expanded_table_waits_for_contract(
    project: Path, db_url: str
) -> None:
    settings = load_settings()
    pgshift.up(settings, backup=False)
    _write(
        project, V3, "more", "ALTER TABLE accounts ADD COLUMN extra text;\n",
        "ALTER TABLE accounts DROP COLUMN extra;\n",
    )  # fmt: skip
    with pytest.raises(InputError, match=f"pgshift contract {V2}"):
        pgshift.up(settings, backup=False)
    result = pgshift.contract(settings, backup=False)
    assert [s.version for s in result.steps] == [V2]
    [run] = [r for r in pgshift.run_history(settings).runs if r.run_id == result.run_id]
    assert (run.kind, run.outcome, run.contracted, run.applied) == (
        "contract",
        "finished",
        (V2,),
        (),
    )
    pgshift.up(settings, backup=False)
    assert "extra" in _columns(db_url)


def test_on_a_database_without_the_table_the_migration_runs_as_written(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A fresh database (a developer's, CI's, a new tenant's) gets the table and its change in
    one `up`: no running code uses a table that did not exist, so the final form runs as
    written and the migration is applied, not expanded."""
    folder = tmp_path / "migrations"
    folder.mkdir()
    _write(folder, V1, "accounts", TABLE, "DROP TABLE accounts;\n")
    _write(folder, V2, "rename_and_widen", EXPAND, "SELECT 1;\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("DB_BACKUP_ENABLED", "false")
    assert main(["up", "--dry-run"]) == 0
    assert "-- @expand-contract: runs as written, none of its tables" in capsys.readouterr().out
    assert main(["up", "--yes"]) == 0
    capsys.readouterr()
    assert main(["status", "--json"]) == 0
    states = {m["version"]: m["state"] for m in json.loads(capsys.readouterr().out)["migrations"]}
    assert states == {V1: "applied", V2: "applied"}
    assert _columns(db_url) == {"id": "bigint", "full_name": "text", "amount": "bigint"}
    assert _leftovers(db_url) == []


def test_a_table_without_a_primary_key_is_copied_along_its_batch_key(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "migrations"
    folder.mkdir()
    _write(
        folder, V1, "events",
        "-- Description: events\nCREATE TABLE events (code text NOT NULL UNIQUE, n integer);\n"
        "INSERT INTO events SELECT 'e' || g, g FROM generate_series(1, 3000) g;\n",
        "DROP TABLE events;\n",
    )  # fmt: skip
    _write(
        folder, V2, "widen",
        "-- Description: widen\n-- @expand-contract: true\n-- @batch-key: code\n"
        "-- @batch-size: 500\nALTER TABLE events ALTER COLUMN n TYPE bigint;\n",
        "ALTER TABLE events ALTER COLUMN n TYPE integer;\n",
    )  # fmt: skip
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("DB_BACKUP_ENABLED", "false")
    monkeypatch.setenv("PGSHIFT_BACKFILL_BATCH_TIME", "0")  # fixed batches: @batch-size's
    assert main(["up", "--yes", "--target", V1]) == 0
    assert main(["up", "--yes"]) == 0
    with psycopg.connect(db_url) as conn:
        batches = conn.execute("SELECT batches FROM pgshift.backfill").fetchone()
        assert batches == (6,)  # 3,000 rows along `code`, in batches of 500
    assert main(["contract", "--yes"]) == 0
    with psycopg.connect(db_url) as conn:
        assert conn.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attrelid = 'events'::regclass AND attname = 'n'"
        ).fetchone() == ("bigint",)
        assert conn.execute("SELECT sum(n) FROM events").fetchone() == (4501500,)
