"""Queries shown by health: constants become $n, comments go, what does not parse is withheld."""

from __future__ import annotations

import pytest

from pgshift.ops.health import QUERY_CHARS, shown_query
from pgshift.source.normalize import WITHHELD, normalize_query


@pytest.mark.parametrize(
    ("query", "shown"),
    [
        ("INSERT INTO s VALUES (1, '4111-1111-1111-1111')", "INSERT INTO s VALUES ($1, $2)"),
        ("SELECT * FROM t WHERE a = E'x' AND b IN (1.5, x'0F')", "SELECT * FROM t WHERE a = $1 AND b IN ($2, $3)"),  # noqa: E501
        ("ALTER ROLE app PASSWORD 'hunter2'", "ALTER ROLE app PASSWORD $1"),
        ("SELECT $$dollar secret$$", "SELECT $1"),
        ("SELECT 1 /* card 4111 */ -- note 4111\n, 2", "SELECT $1 , $2"),
        ("SELECT $1", "SELECT $1"),
        ("", ""),
    ],
)  # fmt: skip
def test_constants_and_comments_never_show(query: str, shown: str) -> None:
    assert normalize_query(query) == shown


def test_a_query_cut_short_inside_a_literal_is_withheld() -> None:
    """pg_stat_activity keeps track_activity_query_size bytes: a cut literal cannot be masked."""
    assert normalize_query("INSERT INTO t VALUES ('4111-11") == WITHHELD


def test_shown_query_is_full_only_when_asked_and_always_bounded() -> None:
    text = "SELECT 'secret' FROM t WHERE id = 1" + " AND true" * 100
    assert "secret" not in shown_query(text, full=False)
    assert shown_query(text, full=True).startswith("SELECT 'secret'")
    assert len(shown_query(text, full=True)) == QUERY_CHARS
