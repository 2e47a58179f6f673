"""The parse memo: same header and statements as the parsers, never trusted when damaged."""

from __future__ import annotations

import json
from pathlib import Path

from pgshift.source.header import parse_header
from pgshift.source.loader import read_migrations
from pgshift.source.sql import split_statements
from pgshift.source.statement_cache import StatementCache
from tests.plugins.project import ProjectMaker, migration_pair

SQL = """-- Migration: 20250101000000_one.sql
-- @zero-downtime: false
-- @estimated-duration: 2 minutes
-- @dependencies: 20240101000000
-- @custom-key: kept

-- pgshift-ignore: prefer-text
CREATE TABLE café (id int, name varchar(20));
CREATE INDEX CONCURRENTLY café_name_idx ON café (name);
DO $$ BEGIN PERFORM 1; END $$;
"""


def test_a_hit_returns_what_the_parsers_return() -> None:
    first = StatementCache()
    header, header_problems, parsed, problems = first.parse(SQL, "a.sql", rollback=False)
    assert header_problems == [] and problems == [] and first.changed
    second = StatementCache.from_bytes(first.to_bytes())
    cached_header, header_problems, cached, problems = second.parse(SQL, "a.sql", rollback=False)
    assert header_problems == [] and problems == [] and not second.changed
    assert cached == parsed == split_statements(SQL, "a.sql")[0]
    assert cached_header == header == parse_header(SQL, "a.sql")[0]
    assert cached_header.dependencies == ("20240101000000",)
    assert [f.key for f in cached_header.unknown] == ["custom-key"]
    assert cached[1].concurrent_index == (None, "café_name_idx")
    assert cached[0].ignore == ("prefer-text",)
    assert all(s.tree is None for s in cached)  # trees are not kept; the linter re-parses


def test_syntax_errors_are_never_memoised() -> None:
    cache = StatementCache()
    _, _, statements, problems = cache.parse("CREAT TABLE x ();", "bad.sql", rollback=False)
    assert statements == () and problems and not cache.changed
    _, header_problems, _, _ = cache.parse(
        "-- @risk-level: huge\nSELECT 1;", "b.sql", rollback=False
    )
    assert header_problems and not cache.changed


def test_damaged_or_foreign_memos_are_ignored() -> None:
    good = StatementCache()
    good.parse(SQL, "a.sql", rollback=False)
    document = json.loads(good.to_bytes())
    for data in (
        b"not json",
        json.dumps({**document, "format": 0}).encode(),
        json.dumps({**document, "parser": "another pglast"}).encode(),
        json.dumps({**document, "entries": {k: [["x"]] for k in document["entries"]}}).encode(),
    ):
        cache = StatementCache.from_bytes(data)
        header, _, statements, _ = cache.parse(SQL, "a.sql", rollback=False)
        assert statements == split_statements(SQL, "a.sql")[0]
        assert header == parse_header(SQL, "a.sql")[0]


def test_only_entries_used_by_the_last_read_are_kept() -> None:
    cache = StatementCache()
    cache.parse("SELECT 1;", "one.sql", rollback=False)
    reread = StatementCache.from_bytes(cache.to_bytes())
    reread.parse("SELECT 2;", "two.sql", rollback=False)
    entries = json.loads(reread.to_bytes())["entries"]
    assert len(entries) == 1


def test_loader_with_a_memo_equals_loader_without(make_project: ProjectMaker) -> None:
    root = make_project(
        {
            **migration_pair("20250101000000", "one", SQL.split("\n\n", 1)[1]),
            **migration_pair("20250102000000", "two", "ALTER TABLE café ADD COLUMN x int;"),
        }
    )
    folder: Path = root / "migrations"
    plain = read_migrations(folder)
    cache = StatementCache()
    read_migrations(folder, cache)
    memo = StatementCache.from_bytes(cache.to_bytes())
    again = read_migrations(folder, memo)
    assert plain.problems == ()
    assert again == plain
    assert not memo.changed
