"""Tests of the header parser: every field, every bad value, with the line it is reported on."""

from __future__ import annotations

import pytest

from pgshift.model import Header, HeaderField
from pgshift.source.header import parse_header

SEED_HEADER = """\
-- Migration: 20250528120000_add_user_preferences_table.sql
-- Description: Add user preferences table for storing user settings
-- Created: 2025-05-28
-- Version: 20250528120000
-- @zero-downtime: true
-- @estimated-duration: 30 seconds
-- @risk-level: low
-- @dependencies: 20250527100000_create_users_table

-- Create the user preferences table
CREATE TABLE user_preferences (id bigint);
"""


def parse_ok(text: str, *, rollback: bool = False) -> Header:
    header, problems = parse_header(text, "m.sql", rollback=rollback)
    assert problems == []
    return header


def messages(text: str, *, rollback: bool = False) -> list[str]:
    return [str(p) for p in parse_header(text, "m.sql", rollback=rollback)[1]]


def test_seed_header() -> None:
    header = parse_ok(SEED_HEADER)
    assert header.migration == "20250528120000_add_user_preferences_table.sql"
    assert header.description == "Add user preferences table for storing user settings"
    assert header.created == "2025-05-28"
    assert header.version == "20250528120000"
    assert header.zero_downtime is True
    assert header.estimated_duration_ms == 30_000
    assert header.risk_level == "low"
    assert header.dependencies == ("20250527100000_create_users_table",)
    assert header.transaction is True
    assert header.unknown == ()
    assert [(f.key, f.line, f.is_annotation) for f in header.fields] == [
        ("migration", 1, False),
        ("description", 2, False),
        ("created", 3, False),
        ("version", 4, False),
        ("zero-downtime", 5, True),
        ("estimated-duration", 6, True),
        ("risk-level", 7, True),
        ("dependencies", 8, True),
    ]
    assert header.line_of("risk-level") == 7
    assert header.metadata()["estimated-duration"] == "30 seconds"


def test_pgshift_annotations() -> None:
    header = parse_ok(
        "-- @transaction: false\n"
        "-- @lock-timeout: 2s\n"
        "-- @statement-timeout: 10 minutes\n"
        "-- @lint-ignore: require-concurrent-index ,  ban-drop-column\n"
        "-- @zero-downtime: No\n"
        "-- @risk-level: HIGH\n"
    )
    assert header.transaction is False
    assert header.lock_timeout_ms == 2_000
    assert header.statement_timeout_ms == 600_000
    assert header.lint_ignore == ("require-concurrent-index", "ban-drop-column")
    assert header.zero_downtime is False
    assert header.risk_level == "high"


@pytest.mark.parametrize(
    ("value", "ms"),
    [("30 seconds", 30_000), ("2 minutes", 120_000), ("1h", 3_600_000), ("500ms", 500)],
)
def test_estimated_duration_forms(value: str, ms: int) -> None:
    assert parse_ok(f"-- @estimated-duration: {value}\n").estimated_duration_ms == ms


def test_dependencies_tolerate_whitespace_and_both_forms() -> None:
    header = parse_ok(
        "-- @dependencies:20250101000000 ,  20250102000000_add_x.sql,20250103000000_y\n"
    )
    assert header.dependencies == ("20250101000000", "20250102000000_add_x.sql", "20250103000000_y")


def test_empty_dependencies_mean_none() -> None:
    assert parse_ok("-- @dependencies:\n").dependencies == ()


def test_rollback_header_names_itself() -> None:
    header = parse_ok("-- Rollback: 20250528120000_x_rollback.sql\n", rollback=True)
    assert header.migration == "20250528120000_x_rollback.sql"
    assert header.line_of("rollback") == 1


def test_header_stops_at_first_sql_line() -> None:
    header = parse_ok("-- @risk-level: low\n\nSELECT 1;\n-- @risk-level: high\n-- @bogus: 1\n")
    assert header.risk_level == "low"
    assert len(header.fields) == 1


def test_blank_lines_and_plain_comments_inside_header() -> None:
    text = "-- A note: not a field\n\n   -- Version: 20250101000000\n--\n-- @zero-downtime: yes\n"
    header = parse_ok(text)
    assert header.version == "20250101000000"
    assert header.zero_downtime is True
    assert [(f.key, f.line) for f in header.fields] == [("version", 3), ("zero-downtime", 5)]


def test_crlf_lines_are_counted_like_lf() -> None:
    header = parse_ok("-- Version: 20250101000000\r\n\r\n-- @risk-level: medium\r\nSELECT 1;\r\n")
    assert header.risk_level == "medium"
    assert header.line_of("risk-level") == 3


def test_unknown_annotations_are_kept_not_problems() -> None:
    header = parse_ok("-- @owner: team-db\n-- @ticket\n")
    assert header.unknown == (
        HeaderField("owner", "team-db", 1, True),
        HeaderField("ticket", "", 2, True),
    )
    assert header.metadata() == {"owner": "team-db", "ticket": ""}


def test_plain_key_and_annotation_of_the_same_name_are_distinct() -> None:
    header = parse_ok("-- Created: 2025-05-28\n-- @created: yesterday\n")
    assert header.created == "2025-05-28"
    assert [f.key for f in header.unknown] == ["created"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "-- @zero-downtime: maybe",
            "m.sql:2: bad value 'maybe' for @zero-downtime: expected true, false, yes or no",
        ),
        (
            "-- @zero-downtime",
            "m.sql:2: bad value '' for @zero-downtime: expected true, false, yes or no",
        ),
        (
            "-- @estimated-duration: soon",
            "m.sql:2: bad value 'soon' for @estimated-duration: 'soon' is not a duration"
            " (examples: 500ms, 30 seconds, 2 minutes, 1h)",
        ),
        (
            "-- @estimated-duration: 3 fortnights",
            "m.sql:2: bad value '3 fortnights' for @estimated-duration: unknown unit 'fortnights'"
            " in duration '3 fortnights' (use ms, s, min, h)",
        ),
        (
            "-- @risk-level: critical",
            "m.sql:2: bad value 'critical' for @risk-level: expected one of low, medium, high",
        ),
        (
            "-- @dependencies: 20250101000000,,20250102000000",
            "m.sql:2: bad value '20250101000000,,20250102000000' for @dependencies: empty entry"
            " in the comma-separated list; expected a version (YYYYMMDDHHMMSS) or a migration"
            " name (YYYYMMDDHHMMSS_description)",
        ),
        (
            "-- @dependencies: create_users_table",
            "m.sql:2: bad value 'create_users_table' for @dependencies: entry 'create_users_table'"
            " is not a version (YYYYMMDDHHMMSS) or a migration name"
            " (YYYYMMDDHHMMSS_description)",
        ),
        (
            "-- @transaction: sometimes",
            "m.sql:2: bad value 'sometimes' for @transaction: expected true, false, yes or no",
        ),
        (
            "-- @lock-timeout: 2 parsecs",
            "m.sql:2: bad value '2 parsecs' for @lock-timeout: unknown unit 'parsecs' in duration"
            " '2 parsecs' (use ms, s, min, h)",
        ),
        (
            "-- @statement-timeout: -5s",
            "m.sql:2: bad value '-5s' for @statement-timeout: '-5s' is not a duration"
            " (examples: 500ms, 30 seconds, 2 minutes, 1h)",
        ),
        (
            "-- @lint-ignore: a,",
            "m.sql:2: bad value 'a,' for @lint-ignore: empty entry in the comma-separated list;"
            " expected rule codes such as require-concurrent-index",
        ),
        (
            "-- Created: 28/05/2025",
            "m.sql:2: bad value '28/05/2025' for Created: expected a date YYYY-MM-DD",
        ),
        (
            "-- Created: 2025-02-30",
            "m.sql:2: bad value '2025-02-30' for Created: expected a date YYYY-MM-DD",
        ),
        (
            "-- Version: 2025",
            "m.sql:2: bad value '2025' for Version: expected the 14-digit version YYYYMMDDHHMMSS",
        ),
        ("-- Description:", "m.sql:2: bad value '' for Description: expected a value"),
        (
            "-- @risk-level high",
            "m.sql:2: missing ':' after @risk-level; write it as '-- @risk-level: high'",
        ),
        (
            "-- Rollback: 20250101000000_x_rollback.sql",
            "m.sql:2: '-- Rollback:' does not belong in a forward migration file; it names itself"
            " with '-- Migration:'",
        ),
    ],
)
def test_bad_values_are_located_problems(line: str, message: str) -> None:
    _, problems = parse_header(f"-- a plain comment\n{line}\nSELECT 1;\n", "m.sql")
    assert [str(p) for p in problems] == [message]


def test_bad_value_leaves_default_but_keeps_the_field() -> None:
    header, problems = parse_header("-- @risk-level: critical\n-- @transaction: nah\n", "m.sql")
    assert len(problems) == 2
    assert header.risk_level is None
    assert header.transaction is True
    assert header.line_of("transaction") == 2


def test_migration_key_in_a_rollback_file() -> None:
    assert messages("-- Migration: 20250101000000_x.sql\n", rollback=True) == [
        "m.sql:1: '-- Migration:' does not belong in a rollback file; it names itself with"
        " '-- Rollback:'"
    ]


def test_duplicate_keys() -> None:
    text = "-- @risk-level: low\n-- Version: 20250101000000\n-- @risk-level: high\n-- VERSION: 1\n"
    header, problems = parse_header(text, "m.sql")
    assert [str(p) for p in problems] == [
        "m.sql:3: duplicate header field @risk-level (first given on line 1)",
        "m.sql:4: duplicate header field Version (first given on line 2)",
    ]
    assert header.risk_level == "low"


def test_duplicate_unknown_annotation_is_a_problem() -> None:
    assert messages("-- @owner: a\n-- @owner: b\n") == [
        "m.sql:2: duplicate header field @owner (first given on line 1)"
    ]


def test_no_header() -> None:
    header = parse_ok("CREATE TABLE t (id int);\n-- Version: 1\n")
    assert header == Header()


def test_header_lines_reads_the_block_as_splitting_the_whole_text_would() -> None:
    """header_lines stops at the block's end; it must agree with reading every line."""
    import random

    from pgshift.source.header import header_lines

    def every_line(text: str) -> list[tuple[int, str]]:
        lines = text.replace("\r\n", "\n").replace("\r", "\n").removeprefix("\ufeff").split("\n")
        found = []
        for number, raw in enumerate(lines, start=1):
            if raw.strip():
                if not raw.strip().startswith("--"):
                    break
                found.append((number, raw.strip()[2:].strip()))
        return found

    parts = ["", "\n", "\r\n", "\r", "-- a: b", "--x", "  -- @k: v  ", "SELECT 1;", "\ufeff", "\t"]
    pick = random.Random(7)
    for _ in range(20000):
        text = "".join(pick.choice(parts) for _ in range(pick.randint(0, 8)))
        assert header_lines(text) == every_line(text), repr(text)


BACKFILL_HEADER = """\
-- @kind: backfill
-- @batch-key: Tenant, "Order No"
-- @batch-size: 10_000
-- @batch-pause: 500ms
UPDATE orders SET n = n + 1;
"""


def test_backfill_annotations() -> None:
    header = parse_ok(BACKFILL_HEADER)
    assert header.kind == "backfill"
    assert header.batch_key == ("tenant", "Order No")
    assert header.batch_size == 10_000
    assert header.batch_pause_ms == 500
    assert header.unknown == ()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("-- @kind: backfil", "m.sql:1: bad value 'backfil' for @kind: expected one of backfill"),
        ("-- @batch-size: 0", "m.sql:2: bad value '0' for @batch-size: expected a whole number"),
        ("-- @batch-size: lots", "m.sql:2: bad value 'lots' for @batch-size: expected a whole"),
        ("-- @batch-key: a b", "m.sql:2: bad value 'a b' for @batch-key: 'a b' is not a column"),
        ("-- @batch-key: a, A", "m.sql:2: bad value 'a, A' for @batch-key: a column is named"),
        ("-- @batch-pause: soon", "m.sql:2: bad value 'soon' for @batch-pause: 'soon' is not a"),
    ],
)
def test_bad_backfill_values_name_their_line(line: str, message: str) -> None:
    text = line + "\n" if "kind" in line else "-- @kind: backfill\n" + line + "\n"
    found = messages(text + "UPDATE t SET a = 1;\n")
    assert len(found) == 1
    assert found[0].startswith(message)


def test_batch_annotations_need_the_backfill_kind() -> None:
    also = " (or '-- @expand-contract: true', whose copy of the rows is one)"
    assert messages("-- @batch-size: 100\n-- @batch-key: id\nUPDATE t SET a = 1;\n") == [
        "m.sql:1: @batch-size applies only to a backfill; add '-- @kind: backfill'" + also,
        "m.sql:2: @batch-key applies only to a backfill; add '-- @kind: backfill'" + also,
    ]


def test_batch_annotations_pace_an_expand_contract_copy_too() -> None:
    text = "-- @expand-contract: true\n-- @batch-size: 100\n-- @batch-pause: 5ms\n"
    assert messages(text + "ALTER TABLE t RENAME COLUMN a TO b;\n") == []
