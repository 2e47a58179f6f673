"""canonical_view on literals: the qualifier PostgreSQL 15 prints at a view's top level goes,
the ones both majors print stay (tests/integration/test_fingerprint.py checks real servers)."""

from __future__ import annotations

import pytest

from pgshift.source.viewdef import canonical_view


@pytest.mark.parametrize(
    ("fifteen", "eighteen"),
    [
        (
            "SELECT users.id,\n    users.name\n   FROM users;",
            " SELECT id,\n    name\n   FROM users;",
        ),
        (
            "SELECT u.id, (SELECT count(*) FROM o WHERE o.uid = u.id) AS n FROM users u"
            " WHERE (u.score > 1) ORDER BY u.id",
            "SELECT id, (SELECT count(*) FROM o WHERE o.uid = u.id) AS n FROM users u"
            " WHERE (score > 1) ORDER BY id",
        ),
        ("SELECT x.x FROM generate_series(1, 2) x(x)", "SELECT x FROM generate_series(1, 2) x(x)"),
    ],
)
def test_one_spelling_for_both_majors(fifteen: str, eighteen: str) -> None:
    assert canonical_view(fifteen) == canonical_view(eighteen)


@pytest.mark.parametrize(
    "query",
    [
        "SELECT a.x FROM a JOIN b ON a.id = b.id",  # two range entries: qualified on both
        "SELECT a.x FROM a, b",
        "SELECT s.a FROM t s UNION SELECT 1",  # set-operation arms are nested queries
    ],
)
def test_qualifiers_both_majors_print_stay(query: str) -> None:
    assert "a.x" in canonical_view(query) or "s.a" in canonical_view(query)


def test_a_different_query_stays_different() -> None:
    assert canonical_view("SELECT t.a FROM t WHERE t.a > 1") != canonical_view(
        "SELECT a FROM t WHERE a > 2"
    )


def test_text_that_does_not_parse_is_kept_not_raised() -> None:
    assert canonical_view("SELECT (  broken") == "SELECT ( broken"
