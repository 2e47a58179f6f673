"""Checks of the test plugin itself: each test gets a fresh database on the server it names."""

from __future__ import annotations

import psycopg
import pytest
from tests.plugins.pg import PgServer, version_matches

# Shared between the two tests below so that the second can look for the first's table.
_seen: dict[str, str] = {}


def test_server_version_matches_pg_major(db_url: str, pg_major: int) -> None:
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SHOW server_version_num").fetchone()
    assert row is not None
    assert int(row[0]) // 10000 == pg_major


@pytest.mark.parametrize("step", ["first", "second"])
def test_each_test_gets_a_fresh_database(db_url: str, pg_server: PgServer, step: str) -> None:
    with psycopg.connect(db_url) as conn:
        dbname = conn.execute("SELECT current_database()").fetchone()
        exists = conn.execute("SELECT to_regclass('public.left_behind') IS NOT NULL").fetchone()
        conn.execute("CREATE TABLE left_behind (id int)")
    assert dbname is not None and exists is not None
    assert exists[0] is False, "a test database must not contain objects from another test"
    key = f"{pg_server.name}-{step}"
    assert dbname[0] not in _seen.values()
    _seen[key] = dbname[0]


@pytest.mark.pg(">= 1")
def test_marker_runs_on_matching_server(pg_major: int) -> None:
    assert pg_major >= 1


@pytest.mark.parametrize(
    ("spec", "major", "expected"),
    [(">= 16", 16, True), (">=16", 15, False), ("> 15", 16, True), ("<= 15", 15, True),
     ("< 15", 15, False), ("== 18", 18, True), ("==18", 17, False)],
)  # fmt: skip
def test_version_matches(spec: str, major: int, expected: bool) -> None:
    assert version_matches(spec, major) is expected


def test_version_matches_rejects_bad_spec() -> None:
    with pytest.raises(ValueError, match=r"bad @pytest\.mark\.pg spec"):
        version_matches("~> 16", 16)
