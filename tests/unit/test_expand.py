"""rewrite/expand.py from literals: what a migration asks, what each phase runs, what is
refused and why (no database: the catalog facts are written here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgshift.model import ColumnFacts, Reference, TableFacts, TableIndex
from pgshift.rewrite.backfill import Relation
from pgshift.rewrite.expand import (
    CONTRACT,
    EXPAND,
    UNDO,
    Expansion,
    NotExpandable,
    artifact,
    changes_of,
    expansion,
)
from pgshift.source.sql import split_statements

V = "20260101000000"
USERS = Relation(None, "users")


def _facts(**extra: object) -> TableFacts:
    columns = (
        ColumnFacts("id", "bigint", True, None),
        ColumnFacts("name", "text", True, None),
        ColumnFacts("amount", "integer", False, "0"),
        ColumnFacts("gen", "integer", False, None, generated=True),
    )
    return TableFacts("public", "users", columns, ("id",), **extra)  # type: ignore[arg-type]


def _expand(sql: str, facts: TableFacts | None = None, down: str | None = None) -> Expansion:
    statements, problems = split_statements(sql, "m.sql")
    assert not problems
    return expansion(V, changes_of(statements), {USERS: facts or _facts()}, down=down)


def _sql(e: Expansion, phase: str) -> list[str]:
    return [s.sql for s in e.steps(phase)]


def test_a_rename_adds_the_new_column_beside_the_old_and_contract_drops_the_old() -> None:
    e = _expand("ALTER TABLE users RENAME COLUMN name TO full_name;")
    expand = _sql(e, EXPAND)
    assert expand[0] == "ALTER TABLE public.users ADD COLUMN full_name text"
    assert any(s.startswith("CREATE TRIGGER zz_users_pgshift_sync_") for s in expand)
    assert (
        "UPDATE public.users SET full_name = name WHERE full_name IS DISTINCT FROM name" in expand
    )
    assert "ALTER TABLE public.users DROP COLUMN name" in _sql(e, CONTRACT)
    assert _sql(e, UNDO)[-1] == "ALTER TABLE public.users DROP COLUMN IF EXISTS full_name"
    assert e.tables == ("public.users",)


def test_a_type_change_fills_a_shadow_column_through_its_using_expression() -> None:
    e = _expand("ALTER TABLE users ALTER COLUMN amount TYPE numeric(12,2) USING amount / 100.0;")
    shadow = artifact("amount", "new", V)
    body = next(s for s in _sql(e, EXPAND) if s.startswith("CREATE FUNCTION"))
    assert f"new.{shadow} := new.amount / 100.0;" in body
    contract = _sql(e, CONTRACT)
    assert contract.index("ALTER TABLE public.users DROP COLUMN amount") < contract.index(
        f"ALTER TABLE public.users RENAME COLUMN {shadow} TO amount"
    )
    assert "ALTER TABLE public.users ALTER COLUMN amount SET DEFAULT 0" in contract


def test_a_rename_and_a_type_change_of_one_column_are_one_pair_with_the_way_back() -> None:
    e = _expand(
        "ALTER TABLE users RENAME COLUMN amount TO cents;"
        " ALTER TABLE users ALTER COLUMN cents TYPE bigint USING cents * 100;",
        down="cents / 100",
    )
    body = next(s for s in _sql(e, EXPAND) if s.startswith("CREATE FUNCTION"))
    assert "new.cents := new.amount * 100" in body
    assert "new.amount := new.cents / 100" in body
    assert "ALTER TABLE public.users ADD COLUMN cents bigint" in _sql(e, EXPAND)


def test_indexes_of_the_old_column_are_built_concurrently_for_the_new_and_renamed_back() -> None:
    index = TableIndex(
        "users_name_key",
        "CREATE UNIQUE INDEX users_name_key ON public.users USING btree (name)",
        ("name",),
        "users_name_key",
    )
    e = _expand("ALTER TABLE users RENAME COLUMN name TO full_name;", _facts(indexes=(index,)))
    built = artifact("users_name_key", "ix", V)
    step = next(s for s in e.steps(EXPAND) if s.concurrent_index)
    assert step.sql == f"CREATE UNIQUE INDEX CONCURRENTLY {built} ON public.users (full_name)"
    assert not step.transactional and step.concurrent_index == ("public", built)
    assert _sql(e, CONTRACT)[-2:] == [
        f"ALTER INDEX public.{built} RENAME TO users_name_key",
        "ALTER TABLE public.users ADD CONSTRAINT users_name_key UNIQUE USING INDEX users_name_key",
    ]


@pytest.mark.parametrize(
    ("sql", "facts", "reason"),
    [
        (
            "ALTER TABLE users ADD COLUMN x int NOT NULL;",
            None,
            "without a DEFAULT breaks the old code",
        ),
        ("ALTER TABLE users DROP COLUMN id;", None, "part of the primary key"),
        ("ALTER TABLE users ALTER COLUMN gen TYPE bigint;", None, "gen is a generated column"),
        ("DROP TABLE users;", None, "DropStmt is not one expand and contract can serve"),
        ("ALTER TABLE users RENAME COLUMN nope TO x;", None, "column nope of users does not exist"),
        (
            "ALTER TABLE users DROP COLUMN name;",
            _facts(views=(("public.v", ("name",)),)),
            "view public.v reads name",
        ),
        (
            "ALTER TABLE users DROP COLUMN name;",
            _facts(referenced=(Reference("orders_user_fk", "orders", ("name",), "x"),)),
            "referenced by foreign key orders_user_fk of orders: drop that constraint first",
        ),
        ("ALTER TABLE users ADD PRIMARY KEY (name);", None, "only CHECK, FOREIGN KEY and UNIQUE"),
        (
            "ALTER TABLE users RENAME COLUMN name TO full_name;",
            TableFacts("public", "users", (ColumnFacts("name", "text", False, None),), ()),
            "users has no primary key to copy its rows along",
        ),
        (
            "ALTER TABLE users ALTER COLUMN amount TYPE bigint;",
            _facts(partitioned=True),
            "users is partitioned",
        ),
    ],
)
def test_what_cannot_be_served_in_two_shapes_is_refused_with_the_reason(
    sql: str, facts: TableFacts | None, reason: str
) -> None:
    with pytest.raises(NotExpandable, match=reason) as refused:
        _expand("-- a comment\n" + sql, facts)
    assert refused.value.line == 2


def test_the_applied_row_keeps_contract_and_undo_exactly() -> None:
    e = _expand("ALTER TABLE users RENAME COLUMN name TO full_name;")
    again = Expansion.from_record(V, e.record())
    assert again.steps(CONTRACT) == e.steps(CONTRACT)
    assert again.steps(UNDO) == e.steps(UNDO)
    assert again.groups(CONTRACT) == e.groups(CONTRACT) == ((0, len(e.contract), True),)


def test_artifact_names_fit_postgresql_and_stay_unique() -> None:
    long = "x" * 70
    a, b = artifact(long, "new", V), artifact(long + "y", "new", V)
    assert len(a.encode()) <= 63 and len(b.encode()) <= 63 and a != b
    assert a.endswith(f"_pgshift_new_{V}")


def test_identifiers_are_quoted_by_the_printer() -> None:
    columns = (ColumnFacts("id", "bigint", True, None), ColumnFacts("Name", "text", False, None))
    facts = TableFacts("public", "Users", columns, ("id",))
    statements, _ = split_statements(
        'ALTER TABLE "Users" RENAME COLUMN "Name" TO "Full Name";', "m.sql"
    )
    e = expansion(V, changes_of(statements), {Relation(None, "Users"): facts})
    assert _sql(e, EXPAND)[0] == 'ALTER TABLE public."Users" ADD COLUMN "Full Name" text'


def test_an_expand_down_nothing_uses_is_refused_on_its_line() -> None:
    with pytest.raises(NotExpandable, match="@expand-down is the way back") as refused:
        expansion(
            V,
            changes_of(
                split_statements("ALTER TABLE users ALTER COLUMN amount TYPE bigint;", "m")[0]
            ),
            {USERS: _facts()},
            down="amount::integer",
            down_line=3,
        )
    assert refused.value.line == 3


def test_the_way_back_follows_a_retyped_column_renamed_afterwards() -> None:
    e = _expand(
        "ALTER TABLE users ALTER COLUMN amount TYPE bigint USING amount * 100;"
        " ALTER TABLE users RENAME COLUMN amount TO cents;",
        down="amount / 100",
    )
    body = next(s for s in _sql(e, EXPAND) if s.startswith("CREATE FUNCTION"))
    assert "new.amount := new.cents / 100" in body


def test_validate_refuses_what_cannot_be_served_before_any_database(tmp_path: Path) -> None:
    """The loader finds, from the statements alone, what an @expand-contract migration asks
    that has no two-shape form: `validate` (and `up`, exit 2) names its file and line."""
    from pgshift.source.loader import read_migrations

    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / f"{V}_drop.sql").write_text(
        "-- Description: drop\n-- @expand-contract: true\nDROP TABLE users;\n"
    )
    (folder / f"{V}_drop_rollback.sql").write_text("SELECT 1;\n")
    problems = [str(p) for p in read_migrations(folder).problems]
    assert problems == [
        f"{folder / f'{V}_drop.sql'}:3: @expand-contract: DropStmt is not one expand and"
        " contract can serve in two shapes; move it to a migration of its own"
    ]
