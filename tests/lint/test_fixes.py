"""The fixes (lint/fixes.py): each parses, and the rule it answers finds nothing in it.

Every fix of every ``bad_*`` case of the three fixable rules is checked, and a few written
here for the shapes the cases do not have (comments kept, unnamed constraints, quoting, a
statement with several subcommands, which gets no fix).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pglast import parse_sql

from pgshift.lint.engine import lint_text
from pgshift.lint.finding import DEFAULT_DOCS_URL, Finding, render_text
from pgshift.lint.fixes import CONCURRENT_INDEX, NOT_VALID, USING_INDEX

CASES = Path(__file__).parent / "cases"
FIXABLE = (CONCURRENT_INDEX, NOT_VALID, USING_INDEX)
FILE = "20250101000000_change.sql"


def _fixed(finding: Finding, text: str) -> str:
    assert finding.fix is not None
    assert text.count(finding.fix.original) >= 1
    return text.replace(finding.fix.original, finding.fix.replacement, 1)


def _prove(finding: Finding, text: str, file: str) -> None:
    """The fixed file parses; the replacement and the follow-up are clean by the same rule."""
    fix = finding.fix
    assert fix is not None
    parse_sql(_fixed(finding, text))
    alone = lint_text(fix.replacement + ";\n", file)
    assert [f for f in alone if f.code == finding.code] == [], render_text(alone[0], None)
    if fix.follow_up is not None:
        assert fix.follow_up_name is not None
        parse_sql(fix.follow_up)
        assert lint_text(fix.follow_up, fix.follow_up_name) == []


def _case_files() -> list[Path]:
    return sorted(p for code in FIXABLE for p in (CASES / code).glob("bad_*.sql"))


@pytest.mark.parametrize("case", _case_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_fix_of_the_cases_parses_and_is_clean(case: Path) -> None:
    text = case.read_text()
    fixed = [f for f in lint_text(text, case.name) if f.fix is not None]
    for finding in fixed:
        _prove(finding, text, case.name)


def test_the_cases_do_have_fixes() -> None:
    codes = {
        f.code
        for case in _case_files()
        for f in lint_text(case.read_text(), case.name)
        if f.fix is not None
    }
    assert codes == set(FIXABLE)


def _one(text: str, code: str) -> Finding:
    (finding,) = [f for f in lint_text(text, FILE) if f.code == code]
    return finding


def test_concurrently_keeps_comments_and_layout() -> None:
    text = "-- why\nCREATE UNIQUE INDEX /* keep */ IF NOT EXISTS i\n  ON t (a); -- after\n"
    finding = _one(text, CONCURRENT_INDEX)
    assert _fixed(finding, text) == (
        "-- why\nCREATE UNIQUE INDEX CONCURRENTLY /* keep */ IF NOT EXISTS i\n"
        "  ON t (a); -- after\n"
    )
    _prove(finding, text, FILE)
    assert finding.fix_diff() == "\n".join(
        [
            f"--- a/{FILE}",
            f"+++ b/{FILE}",
            "@@ -1,3 +1,3 @@",
            " -- why",
            "-CREATE UNIQUE INDEX /* keep */ IF NOT EXISTS i",
            "+CREATE UNIQUE INDEX CONCURRENTLY /* keep */ IF NOT EXISTS i",
            "   ON t (a); -- after",
        ]
    )


def test_an_unnamed_foreign_key_is_named_and_validated_in_the_next_migration() -> None:
    text = "ALTER TABLE app.orders ADD FOREIGN KEY (user_id) REFERENCES users (id);\n"
    finding = _one(text, NOT_VALID)
    assert finding.fix is not None
    assert finding.fix.replacement == (
        "ALTER TABLE app.orders ADD CONSTRAINT orders_user_id_fkey FOREIGN KEY (user_id)"
        " REFERENCES users (id) NOT VALID"
    )
    assert finding.fix.follow_up_name == "20250101000001_validate_orders_user_id_fkey.sql"
    assert finding.fix.follow_up is not None
    assert finding.fix.follow_up.endswith(
        "\nALTER TABLE app.orders VALIDATE CONSTRAINT orders_user_id_fkey;\n"
    )
    _prove(finding, text, FILE)
    diff = finding.fix_diff() or ""
    assert "--- /dev/null\n+++ b/20250101000001_validate_orders_user_id_fkey.sql\n" in diff


def test_a_named_check_keeps_its_name_and_comment() -> None:
    text = 'ALTER TABLE orders\n  ADD CONSTRAINT "Positive" /* >0 */ CHECK (amount > 0);\n'
    finding = _one(text, NOT_VALID)
    assert finding.fix is not None
    assert finding.fix.replacement.endswith('"Positive" /* >0 */ CHECK (amount > 0) NOT VALID')
    assert finding.fix.follow_up is not None
    assert 'VALIDATE CONSTRAINT "Positive";' in finding.fix.follow_up
    _prove(finding, text, FILE)


def test_unique_and_primary_key_become_an_index_and_using_index() -> None:
    text = 'ALTER TABLE "Users" ADD CONSTRAINT "Users_pk" PRIMARY KEY (id, "Order");\n'
    finding = _one(text, USING_INDEX)
    assert finding.fix is not None
    assert finding.fix.replacement == (
        'CREATE UNIQUE INDEX CONCURRENTLY "Users_pk" ON "Users" (id, "Order");\n'
        'ALTER TABLE "Users" ADD CONSTRAINT "Users_pk" PRIMARY KEY USING INDEX "Users_pk"'
    )
    _prove(finding, text, FILE)
    text = "ALTER TABLE users ADD UNIQUE NULLS NOT DISTINCT (email) DEFERRABLE;\n"
    finding = _one(text, USING_INDEX)
    assert finding.fix is not None
    assert "NULLS NOT DISTINCT" in finding.fix.replacement
    assert "DEFERRABLE" in finding.fix.replacement
    _prove(finding, text, FILE)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("ALTER TABLE t ADD CHECK (a > 0), ADD COLUMN b int;\n", NOT_VALID),
        ("ALTER TABLE t ADD COLUMN b int CHECK (b > 0);\n", NOT_VALID),
        ("ALTER TABLE t ADD UNIQUE (a) INCLUDE (b);\n", USING_INDEX),
        ("ALTER TABLE t ADD UNIQUE (a) WITH (fillfactor = 70);\n", USING_INDEX),
        ("ALTER TABLE t ADD COLUMN b int UNIQUE;\n", USING_INDEX),
    ],
)
def test_no_fix_where_it_is_not_mechanical(text: str, code: str) -> None:
    found = [f for f in lint_text(text, FILE) if f.code == code]
    assert found
    assert all(f.fix is None for f in found)


def test_json_carries_the_rule_page_and_the_fix() -> None:
    text = "CREATE INDEX i ON t (a);\n"
    data = _one(text, CONCURRENT_INDEX).to_json()
    assert data["url"] == f"{DEFAULT_DOCS_URL}require-concurrent-index.md"
    assert data["category"] == "locking"
    assert data["fix"].startswith(f"--- a/{FILE}\n+++ b/{FILE}\n")
    other = next(f for f in lint_text(text, FILE) if f.code != CONCURRENT_INDEX).to_json()
    assert other["fix"] is None
    assert other["url"] == f"{DEFAULT_DOCS_URL}{other['code']}.md"
    mirrored = _one(text, CONCURRENT_INDEX).to_json("https://docs.example.com/pgshift/rules")
    assert mirrored["url"] == "https://docs.example.com/pgshift/rules/require-concurrent-index.md"


def test_every_link_points_at_a_page() -> None:
    root = Path(__file__).parents[2] / "docs" / "rules"
    for case in _case_files():
        for finding in lint_text(case.read_text(), case.name):
            assert finding.url.startswith(DEFAULT_DOCS_URL), finding.url
            assert (root / finding.url.removeprefix(DEFAULT_DOCS_URL)).is_file(), finding.url
