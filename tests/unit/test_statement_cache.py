"""The parse memo: same statements as the parser, never trusted when damaged or foreign."""

from __future__ import annotations

import json
from pathlib import Path

from pgshift.source.loader import read_migrations
from pgshift.source.sql import split_statements
from pgshift.source.statement_cache import StatementCache
from tests.plugins.project import ProjectMaker, migration_pair

SQL = """
-- pgshift-ignore: prefer-text
CREATE TABLE café (id int, name varchar(20));
CREATE INDEX CONCURRENTLY café_name_idx ON café (name);
DO $$ BEGIN PERFORM 1; END $$;
"""


def test_a_hit_returns_what_the_parser_returns() -> None:
    first = StatementCache()
    parsed, problems = first.split(SQL, "a.sql")
    assert problems == [] and first.changed
    second = StatementCache.from_bytes(first.to_bytes())
    cached, problems = second.split(SQL, "a.sql")
    assert problems == [] and not second.changed
    assert cached == parsed == split_statements(SQL, "a.sql")[0]
    assert cached[1].concurrent_index == (None, "café_name_idx")
    assert cached[0].ignore == ("prefer-text",)
    assert all(s.tree is None for s in cached)  # trees are not kept; the linter re-parses


def test_syntax_errors_are_never_memoised() -> None:
    cache = StatementCache()
    statements, problems = cache.split("CREAT TABLE x ();", "bad.sql")
    assert statements == () and problems and not cache.changed


def test_damaged_or_foreign_memos_are_ignored() -> None:
    good = StatementCache()
    good.split(SQL, "a.sql")
    document = json.loads(good.to_bytes())
    for data in (
        b"not json",
        json.dumps({**document, "format": 0}).encode(),
        json.dumps({**document, "parser": "another pglast"}).encode(),
        json.dumps({**document, "entries": {k: [["x"]] for k in document["entries"]}}).encode(),
    ):
        cache = StatementCache.from_bytes(data)
        statements, _ = cache.split(SQL, "a.sql")
        assert statements == split_statements(SQL, "a.sql")[0]


def test_only_entries_used_by_the_last_read_are_kept() -> None:
    cache = StatementCache()
    cache.split("SELECT 1;", "one.sql")
    reread = StatementCache.from_bytes(cache.to_bytes())
    reread.split("SELECT 2;", "two.sql")
    entries = json.loads(reread.to_bytes())["entries"]
    assert len(entries) == 1


def test_loader_with_a_memo_equals_loader_without(make_project: ProjectMaker) -> None:
    root = make_project(
        {
            **migration_pair("20250101000000", "one", SQL),
            **migration_pair("20250102000000", "two", "ALTER TABLE café ADD COLUMN x int;"),
        }
    )
    folder: Path = root / "migrations"
    plain = read_migrations(folder)
    cache = StatementCache()
    read_migrations(folder, cache)
    memo = StatementCache.from_bytes(cache.to_bytes())
    again = read_migrations(folder, memo)
    assert again == plain
    assert not memo.changed
