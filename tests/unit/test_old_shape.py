"""Which old-shape names a statement uses (source/old_shape.py), from parse trees: what
`contract --check` reports and what it must not."""

from __future__ import annotations

import pytest

from pgshift.rewrite.expand import Expansion, OldShape
from pgshift.source.old_shape import old_names_in

SHAPES = (
    OldShape("public", "accounts", ("name", "legacy"), new_columns=("full_name",)),
    OldShape("public", "users", (), table_renamed=True),
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SELECT name FROM accounts WHERE id = $1", ("public.accounts.name",)),
        ('SELECT a."name" FROM public.accounts a', ("public.accounts.name",)),
        (
            "INSERT INTO accounts (name, amount) VALUES ($1, $2) ON CONFLICT (name)"
            " DO UPDATE SET amount = excluded.amount RETURNING id",
            ("public.accounts.name",),
        ),
        ("UPDATE accounts SET legacy = $1 WHERE id = $2", ("public.accounts.legacy",)),
        ("DELETE FROM accounts WHERE name = $1 AND legacy", ("public.accounts.name",
                                                            "public.accounts.legacy")),
        ("SELECT * FROM users WHERE id = 1", ("public.users",)),
        ("/* pgshift apply pgshift 20260101000000 */ SELECT name FROM accounts",
         ("public.accounts.name",)),
    ],
)  # fmt: skip
def test_a_statement_of_the_old_shape_is_recognised(text: str, expected: tuple[str, ...]) -> None:
    assert old_names_in(text, SHAPES) == expected


@pytest.mark.parametrize(
    "text",
    [
        "SELECT full_name FROM accounts WHERE id = $1",  # the new shape
        "SELECT full_name AS name FROM accounts",  # an output alias is not a column
        "SELECT 'name', $1 FROM accounts -- name",  # a constant and a comment are no use
        "SELECT name FROM orders",  # another table's column of that name
        "SELECT name FROM other.accounts",  # another schema's table
        "SELECT * FROM people",  # the renamed table's new name
        # The expansion's own backfill names both shapes: not the old code, which predates
        # the new column.
        "UPDATE public.accounts SET full_name = name WHERE full_name IS DISTINCT FROM name",
        "",
    ],
)
def test_other_statements_are_not(text: str) -> None:
    assert old_names_in(text, SHAPES) == ()


def test_a_statement_that_does_not_parse_is_unreadable_not_clean() -> None:
    """Cut short by track_activity_query_size: it cannot be told, so it is not called clean."""
    assert old_names_in("SELECT name FROM accounts WHERE id IN (1, 2, 3", SHAPES) is None
    assert old_names_in("<insufficient privilege>", SHAPES) is None


def test_the_old_names_survive_the_applied_rows_record() -> None:
    expansion = Expansion("20260101000000", ("public.accounts",), (), (), (), old_names=SHAPES)
    record = expansion.record()
    assert record["old_names"][0] == {
        "schema": "public",
        "table": "accounts",
        "columns": ["name", "legacy"],
        "table_renamed": False,
        "new_columns": ["full_name"],
    }
    assert Expansion.from_record("20260101000000", record).old_names == SHAPES
    # A row an older pgshift expanded has no old names: nothing is looked for.
    del record["old_names"]
    assert Expansion.from_record("20260101000000", record).old_names == ()
