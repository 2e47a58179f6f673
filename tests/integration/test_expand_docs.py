"""docs/expand-contract.md, run: its example files are the project, its `Try it` commands run
in order on a database with the page's tables and rows, and what they print is what the page
says; the old and the new code's statements work in the window as the page promises."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest
from tests.support import doc_commands, query, run_doc_commands, write_doc_files

DOC = Path(__file__).resolve().parents[2] / "docs" / "expand-contract.md"

SHOP = """
CREATE TABLE accounts (id serial PRIMARY KEY, name text NOT NULL, email text UNIQUE);
CREATE TABLE orders (id serial PRIMARY KEY, account_id integer NOT NULL REFERENCES accounts (id),
                     total integer NOT NULL DEFAULT 0);
CREATE TABLE order_items (id serial PRIMARY KEY,
                          order_id integer NOT NULL REFERENCES orders (id), sku text);
INSERT INTO accounts (name, email)
    SELECT 'a' || g, g || '@example.com' FROM generate_series(1, 500) g;
INSERT INTO orders (account_id, total) SELECT 1 + g % 500, g FROM generate_series(1, 2000) g;
INSERT INTO order_items (order_id, sku)
    SELECT 1 + g % 2000, 's' || g FROM generate_series(1, 4000) g;
"""


def test_the_expand_contract_page_runs_as_written(
    tmp_path: Path,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    files = write_doc_files(DOC, tmp_path)
    assert len(files) == 4
    query(db_url, SHOP)
    lines = doc_commands(DOC, "Try it")
    assert lines[0].startswith("export ") and len(lines) == 8
    env = {"DATABASE_URL": db_url, "DB_MIGRATIONS_DIR": "migrations"}
    results = run_doc_commands(capsys, monkeypatch, tmp_path, lines, env)
    dry_run, up, expanded, check, contract_dry_run, contract, applied = results
    assert "--   public.accounts.name renamed to full_name; a trigger keeps both shapes equal" in (
        dry_run.out
    )
    assert "20250106000000_widen_order_ids" in up.out
    assert "expanded: 20250105000000_rename_account_name, 20250106000000_widen_order_ids:" in up.out
    assert check.code == 0
    assert "column public.accounts.name" in contract_dry_run.out
    assert "Contracted 2 migration(s)." in contract.out
    assert expanded.out.startswith("2 applied, 0 pending, 2 expanded")
    assert "No session uses the old shape." in check.out
    assert applied.out.startswith("2 applied, 0 pending\n") and "expanded" not in applied.out
    assert query(
        db_url,
        "SELECT table_name, column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = 'public' AND (table_name, column_name) IN"
        " (('accounts', 'full_name'), ('accounts', 'name'), ('orders', 'id'))"
        " ORDER BY 1, 2",
    ) == [("accounts", "full_name", "text"), ("orders", "id", "bigint")]
    assert query(
        db_url, "SELECT count(*) FROM order_items JOIN orders ON orders.id = order_id"
    ) == [(4000,)]


def test_in_the_window_both_codes_work_as_the_page_says(
    tmp_path: Path,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_doc_files(DOC, tmp_path)
    query(db_url, SHOP)
    env = {"DATABASE_URL": db_url, "DB_MIGRATIONS_DIR": "migrations", "DB_BACKUP_ENABLED": "false"}
    [up] = run_doc_commands(capsys, monkeypatch, tmp_path, ["pgshift up --yes"], env)
    assert up.code == 0
    with psycopg.connect(db_url, autocommit=True) as conn:
        old = conn.execute(
            "INSERT INTO accounts (name, email) VALUES ('old', 'o@x') RETURNING id, name"
        ).fetchone()
        new = conn.execute(
            "INSERT INTO accounts (full_name, email) VALUES ('new', 'n@x')"
            " ON CONFLICT (email) DO UPDATE SET full_name = excluded.full_name"
            " RETURNING id, full_name"
        ).fetchone()
        assert old is not None and new is not None
        assert conn.execute(
            "SELECT full_name FROM accounts WHERE id = %s", (old[0],)
        ).fetchone() == ("old",)
        assert conn.execute("SELECT name FROM accounts WHERE id = %s", (new[0],)).fetchone() == (
            "new",
        )
        order = conn.execute(
            "INSERT INTO orders (account_id) VALUES (%s) RETURNING id", (new[0],)
        ).fetchone()
        assert order is not None
        conn.execute("INSERT INTO order_items (order_id, sku) VALUES (%s, 'x')", (order[0],))
    [rollback] = run_doc_commands(
        capsys, monkeypatch, tmp_path, ["pgshift rollback safe --count 2 --yes"], env
    )
    assert rollback.code == 0, rollback.err
    assert query(db_url, "SELECT name FROM accounts WHERE email = 'n@x'") == [("new",)]
    assert query(
        db_url,
        "SELECT data_type FROM information_schema.columns WHERE table_name = 'orders'"
        " AND column_name = 'id'",
    ) == [("integer",)]


def test_the_library_example_runs_as_written(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    [code] = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL)
    write_doc_files(DOC, tmp_path)
    query(db_url, SHOP)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("DB_BACKUP_ENABLED", "false")
    scope: dict[str, object] = {}
    exec(compile(code, str(DOC), "exec"), scope)  # noqa: S102 - the page's own example
    report = scope["report"]
    assert getattr(report, "exit_code", None) == 0
    assert query(
        db_url,
        "SELECT count(*) FROM pgshift.applied WHERE metadata->'expand'->>'phase' = 'contracted'",
    ) == [(2,)]
