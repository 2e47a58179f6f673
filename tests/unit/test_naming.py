"""Tests of the migration file-name rules and of slugs for `pgshift create`."""

from __future__ import annotations

import pytest

from pgshift.source.naming import FileName, migration_file_names, parse_file_name, slugify


def test_forward_name() -> None:
    assert parse_file_name("20250528120000_add_user_preferences_table.sql") == FileName(
        "20250528120000", "add_user_preferences_table", is_rollback=False
    )


def test_rollback_name() -> None:
    assert parse_file_name("20250528120000_add_user_preferences_table_rollback.sql") == FileName(
        "20250528120000", "add_user_preferences_table", is_rollback=True
    )


def test_description_that_is_only_rollback_is_a_forward_file() -> None:
    assert parse_file_name("20250528120000_rollback.sql") == FileName(
        "20250528120000", "rollback", is_rollback=False
    )


def test_leap_day_is_a_valid_version() -> None:
    assert parse_file_name("20240229235959_x.sql").version == "20240229235959"


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("20250528120000_add_table.txt", "does not end in .sql"),
        ("20250528120000.sql", "has no _description"),
        ("20250528120000_.sql", "has no _description"),
        ("2025052812000_add_table.sql", "is not 14 digits"),
        ("add_table.sql", "is not 14 digits"),
        ("20251328120000_add_table.sql", "month must be in 1..12"),
        ("20250230120000_add_table.sql", "day is out of range for month"),
        ("20250528240000_add_table.sql", "hour must be in 0..23"),
        ("20250528126000_add_table.sql", "minute must be in 0..59"),
        ("20250528120060_add_table.sql", "second must be in 0..59"),
        ("00000528120000_add_table.sql", "year 0 is out of range"),
        ("20250528120000_Add_table.sql", "description 'Add_table' must be lower-case"),
        ("20250528120000_add__table.sql", "joined by single underscores"),
        ("20250528120000_add-table.sql", "description 'add-table'"),
        ("20250528120000_add_table_.sql", "description 'add_table_'"),
    ],
)
def test_bad_names_say_what_is_wrong_and_show_the_pattern(name: str, fragment: str) -> None:
    with pytest.raises(
        ValueError, match=r"expected YYYYMMDDHHMMSS_description_of_change\.sql"
    ) as err:
        parse_file_name(name)
    assert fragment in str(err.value)


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        ("Add user preferences table!", "add_user_preferences_table"),
        ("  --Créer la table des réglages--  ", "creer_la_table_des_reglages"),
        ("add   users__v2", "add_users_v2"),
        ("Straße Øre", "strasse_ore"),
    ],
)
def test_slugify(text: str, slug: str) -> None:
    assert slugify(text) == slug


def test_slugify_without_letters_is_an_error() -> None:
    with pytest.raises(ValueError, match="no letters or digits"):
        slugify("!!! ???")


def test_migration_file_names() -> None:
    assert migration_file_names("20250528120000", "add_user_preferences_table") == (
        "20250528120000_add_user_preferences_table.sql",
        "20250528120000_add_user_preferences_table_rollback.sql",
    )


def test_created_names_parse_back() -> None:
    forward, rollback = migration_file_names("20250528120000", slugify("Add users"))
    assert parse_file_name(forward) == FileName("20250528120000", "add_users", False)
    assert parse_file_name(rollback) == FileName("20250528120000", "add_users", True)


@pytest.mark.parametrize(
    ("version", "description", "fragment"),
    [
        ("2025", "add_users", "is not 14 digits"),
        ("20251301000000", "add_users", "month must be in 1..12"),
        ("20250101000000", "Add users", "must be lower-case"),
        ("20250101000000", "undo_rollback", "must not end in '_rollback'"),
    ],
)
def test_migration_file_names_rejects_what_would_not_parse(
    version: str, description: str, fragment: str
) -> None:
    with pytest.raises(ValueError, match=fragment):
        migration_file_names(version, description)
