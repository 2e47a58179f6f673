"""The parse memo: same header and statements as the parsers, never trusted when damaged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pgshift.source.header import parse_header
from pgshift.source.loader import checksum_text, read_migrations
from pgshift.source.sql import split_statements
from pgshift.source.statement_cache import StatementCache, text_key
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


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_a_hit_returns_what_the_parsers_return(newline: str) -> None:
    text = SQL.replace("\n", newline)
    first = StatementCache()
    header, header_problems, parsed, problems, _ = first.parse(text, "a.sql", rollback=False)
    assert header_problems == [] and problems == [] and first.changed
    assert all(s.tree is None for s in parsed)  # a project's trees would be most of its memory
    # Statements are stored as spans of the text, never as copies of their SQL.
    assert "CREATE TABLE" not in first.to_bytes().decode()
    second = StatementCache.from_bytes(first.to_bytes())
    cached_header, header_problems, cached, problems, _ = second.parse(
        text, "a.sql", rollback=False
    )
    assert header_problems == [] and problems == [] and not second.changed
    assert cached == parsed == split_statements(text, "a.sql")[0]
    assert [s.sql for s in cached] == [s.sql for s in parsed]
    assert cached_header == header == parse_header(text, "a.sql")[0]
    assert cached_header.dependencies == ("20240101000000",)
    assert [f.key for f in cached_header.unknown] == ["custom-key"]
    assert cached[1].concurrent_index == (None, "café_name_idx")
    assert cached[0].ignore == ("prefer-text",)
    # What pre-flight reads of a CREATE TABLE comes back without a parse (preflight_head.py).
    assert [s.table_head for s in cached] == [s.table_head for s in parsed]
    assert cached[0].table_head == (None, "café", True, "p", False)
    assert cached[2].table_head is None  # a DO block: pre-flight parses it when it must
    assert all(s.tree is None for s in cached)  # trees are not kept; the linter re-parses


def test_the_key_is_the_checksum_the_loader_has() -> None:
    """One hash per file: with no CR, the memo's key is the migration's checksum."""
    lf = "SELECT 1;\n"
    assert text_key(lf, checksum_text(lf)) == checksum_text(lf)
    crlf = lf.replace("\n", "\r\n")  # same checksum, different text: its own key
    assert text_key(crlf, checksum_text(crlf)) != text_key(lf, checksum_text(lf))
    cache = StatementCache()
    cache.parse(lf, "a.sql", rollback=False, checksum=checksum_text(lf))
    memo = StatementCache.from_bytes(cache.to_bytes())
    _, _, from_lf, _, _ = memo.parse(lf, "a.sql", rollback=False, checksum=checksum_text(lf))
    assert from_lf == split_statements(lf, "a.sql")[0]
    assert not memo.changed
    _, _, from_crlf, _, _ = memo.parse(crlf, "b.sql", rollback=False, checksum=checksum_text(crlf))
    assert memo.changed and from_crlf == split_statements(crlf, "b.sql")[0]


def test_a_span_outside_the_text_is_a_damaged_entry() -> None:
    cache = StatementCache()
    cache.parse("SELECT 1;", "a.sql", rollback=False)
    document = json.loads(cache.to_bytes())
    for entry in document["entries"].values():
        entry[1][0][1] = 500  # the span's length, far past the end of the text
    damaged = StatementCache.from_bytes(json.dumps(document).encode())
    _, _, statements, _, _ = damaged.parse("SELECT 1;", "a.sql", rollback=False)
    assert [s.sql for s in statements] == ["SELECT 1"] and damaged.changed


def test_a_damaged_table_head_is_a_damaged_entry() -> None:
    text = "CREATE TABLE t (id int);"
    cache = StatementCache()
    cache.parse(text, "a.sql", rollback=False)
    document = json.loads(cache.to_bytes())
    for entry in document["entries"].values():
        entry[1][0][-1] = [None, 7, True, "p", False]  # a table named by a number
    damaged = StatementCache.from_bytes(json.dumps(document).encode())
    _, _, statements, _, _ = damaged.parse(text, "a.sql", rollback=False)
    assert statements[0].table_head == (None, "t", True, "p", False) and damaged.changed


def test_syntax_errors_are_never_memoised() -> None:
    cache = StatementCache()
    _, _, statements, problems, _ = cache.parse("CREAT TABLE x ();", "bad.sql", rollback=False)
    assert statements == () and problems and not cache.changed
    _, header_problems, _, _, _ = cache.parse(
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
        header, _, statements, _, _ = cache.parse(SQL, "a.sql", rollback=False)
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


def test_an_unchanged_folder_is_read_from_the_folder_memo_alone(
    make_project: ProjectMaker,
) -> None:
    """A no-op's read: the folder memo stands for the whole folder; per-file entries stay unread."""
    root = make_project(
        {
            **migration_pair("20250101000000", "one", SQL.split("\n\n", 1)[1]),
            **migration_pair("20250102000000", "two", "ALTER TABLE café ADD COLUMN x int;"),
            "20250103000000_three.sql": "-- @custom-key: warned\nSELECT 3;\n",  # no rollback
        }
    )
    folder: Path = root / "migrations"
    plain = read_migrations(folder)
    first = StatementCache()
    assert read_migrations(folder, first) == plain and first.folder_changed

    def untouched() -> bytes:
        raise AssertionError("the per-file entries were read")

    memo = StatementCache.deferred(untouched, first.folder_bytes())
    again = read_migrations(folder, memo)
    assert again == plain and again.warnings and not memo.folder_changed and not memo.changed
    # Any edit is a different folder: its files are read again, the new text is what counts.
    edited = folder / "20250102000000_two.sql"
    edited.write_text(edited.read_text() + "\n-- edited\n")
    memo = StatementCache.deferred(first.to_bytes, first.folder_bytes())
    after = read_migrations(folder, memo)
    assert after == read_migrations(folder) != plain
    assert memo.folder_changed and memo.changed  # the edited file was parsed and remembered
    key, _ = _key_and_result(first)
    assert memo.folder_memo(key) is None  # the folder memo now stands for the edited folder


def _key_and_result(cache: StatementCache) -> tuple[str, object]:
    document = json.loads(cache.folder_bytes())
    return document["key"], document["result"]


def test_a_damaged_folder_memo_is_ignored(make_project: ProjectMaker) -> None:
    root = make_project(migration_pair("20250101000000", "one", "SELECT 1;"))
    folder: Path = root / "migrations"
    first = StatementCache()
    read_migrations(folder, first)
    key, _ = _key_and_result(first)
    for document in (
        b"not json",
        json.dumps({"format": 0, "key": key, "result": {}}).encode(),
        json.dumps({"format": 3, "key": key, "result": {"migrations": [["x"]]}}).encode(),
    ):
        cache = StatementCache.deferred(lambda: None, document)
        assert read_migrations(folder, cache) == read_migrations(folder)


def test_the_memo_builds_plain_dataclasses_exactly_as_their_constructors() -> None:
    from dataclasses import dataclass, fields

    from pgshift.model import HeaderField
    from pgshift.source.statement_cache import plain_maker

    made = plain_maker(HeaderField)({"key": "k", "value": "v", "line": 3, "is_annotation": True})
    built = HeaderField("k", "v", 3, True)
    assert made == built and hash(made) == hash(built) and repr(made) == repr(built)
    with pytest.raises(TypeError):  # a missing field is the constructor's error, not a hole
        plain_maker(HeaderField)({"key": "k", "value": "v", "line": 3})

    @dataclass(frozen=True)
    class Checked:
        n: int

        def __post_init__(self) -> None:
            if self.n < 0:
                raise ValueError("negative")

    assert [f.name for f in fields(Checked)] == ["n"]
    with pytest.raises(ValueError, match="negative"):  # __post_init__ still runs
        plain_maker(Checked)({"n": -1})


def test_a_clean_folder_writes_its_rows_once_and_an_edit_parses_one_file(
    make_project: ProjectMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The folder memo holds every file's entry: no second copy on disk, and after an edit
    the unchanged files still come from it."""
    import pgshift.source.sql
    from pgshift.config import load_settings
    from pgshift.project_files import cache_path, folder_cache_path, read_project

    root = make_project(
        {
            **migration_pair("20250101000000", "one", "CREATE TABLE a (id int);"),
            **migration_pair("20250102000000", "two", "ALTER TABLE a ADD COLUMN x int;"),
        }
    )
    settings = load_settings({"migrations_dir": str(root / "migrations")}, cwd=root)
    parsed: list[str] = []
    real = pgshift.source.sql.split_and_checksum

    def counting(text: str, file: str, *, trees: bool = True) -> object:
        parsed.append(Path(file).name)
        return real(text, file, trees=trees)

    monkeypatch.setattr(pgshift.source.sql, "split_and_checksum", counting)
    first = read_project(settings)
    assert len(parsed) == 4
    assert folder_cache_path(settings).is_file() and not cache_path(settings).exists()
    edited = root / "migrations" / "20250102000000_two.sql"
    edited.write_text(edited.read_text().replace("x int", "y int"))
    parsed.clear()
    after = read_project(settings)
    assert parsed == ["20250102000000_two.sql"]
    assert after == read_migrations(root / "migrations") != first


def test_the_folder_memo_written_in_pieces_is_one_json_document(make_project: ProjectMaker) -> None:
    root = make_project(
        {
            **migration_pair("20250101000000", "one", SQL.split("\n\n", 1)[1]),
            "20250102000000_two.sql": "-- @custom-key: warned\nSELECT 'é';\n",  # a warning
        }
    )
    cache = StatementCache()
    read_migrations(root / "migrations", cache)
    pieces = list(cache.folder_chunks())
    assert len(pieces) > 3  # one per migration, and the frame around them
    document = json.loads("".join(pieces))
    key, result = _key_and_result(cache)
    assert document["key"] == key and document["result"] == result
    assert len(result["migrations"]) == 2 and result["warnings"]  # type: ignore[index]


def test_a_header_row_cut_short_is_a_damaged_entry() -> None:
    cache = StatementCache()
    cache.parse(SQL, "a.sql", rollback=False)
    document = json.loads(cache.to_bytes())
    for entry in document["entries"].values():
        entry[0][0] = entry[0][0][:-1]  # the flat [key, value, line, annotation, ...] list
    damaged = StatementCache.from_bytes(json.dumps(document).encode())
    header, _, _, _, _ = damaged.parse(SQL, "a.sql", rollback=False)
    assert header == parse_header(SQL, "a.sql")[0] and damaged.changed
