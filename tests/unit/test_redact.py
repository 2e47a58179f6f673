"""Passwords are hidden where a text can carry them, and nowhere else (issue 17, finding 5)."""

from __future__ import annotations

import psycopg
import pytest

from pgshift.db.connect import redact

REFUSED = (
    'connection failed: connection to server at "127.0.0.1", port 1 failed: Connection refused\n'
    "\tIs the server running on that host and accepting TCP/IP connections?"
)


def test_a_short_password_does_not_mangle_the_words_that_contain_it() -> None:
    assert redact(REFUSED, "postgresql://app:on@127.0.0.1:1/prod") == REFUSED


def test_a_password_equal_to_the_user_name_leaves_the_user_readable() -> None:
    url = "postgresql://app:app@db.example/prod"
    text = f'FATAL: password authentication failed for user "app" ({url})'
    assert redact(text, url) == (
        'FATAL: password authentication failed for user "app"'
        " (postgresql://app:***@db.example/prod)"
    )


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("postgresql://ops:hunter2@other.example/db", "postgresql://ops:***@other.example/db"),
        ("postgres://ops:hunter2@h/db?sslmode=require", "postgres://ops:***@h/db?sslmode=require"),
        ("postgresql://ops@h/db?password=hunter2&x=1", "postgresql://ops@h/db?password=***&x=1"),
        ("host=h user=ops password=hunter2 dbname=d", "host=h user=ops password=*** dbname=d"),
        ("host=h password='hunt er2' dbname=d", "host=h password=*** dbname=d"),
        ("host=h PASSWORD = hunter2", "host=h PASSWORD = ***"),
    ],
)
def test_password_fields_are_masked_in_any_text(text: str, shown: str) -> None:
    assert redact(f"failed: {text}", None) == f"failed: {shown}"


def test_libpq_quoting_a_bad_url_does_not_show_its_password() -> None:
    url = "postgresql://app:se%zzcret@127.0.0.1:1/db"
    with pytest.raises(psycopg.ProgrammingError) as raised:
        psycopg.connect(url, connect_timeout=1)
    assert "se%zzcret" in str(raised.value)  # libpq quotes it ...
    masked = redact(str(raised.value), url)
    assert "zzcret" not in masked and masked.startswith("invalid percent-encoded token")
