"""The findings memo: a migration is linted again exactly when it or an earlier one changed."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgshift.lint.engine import Linter
from pgshift.lint.finding import Finding
from pgshift.lint.memo import LintMemo, chain_keys
from pgshift.model import Header, Migration
from pgshift.source.loader import checksum_text
from pgshift.source.sql import split_statements

ADD_CHECK = (
    "ALTER TABLE users ADD CONSTRAINT email_nn CHECK (email IS NOT NULL) NOT VALID;\n"
    "ALTER TABLE users VALIDATE CONSTRAINT email_nn;\n"
)
SET_NOT_NULL = "ALTER TABLE users ALTER COLUMN email SET NOT NULL;\n"
BLOCKING_INDEX = "CREATE INDEX users_email_idx ON users (email);\n"


def migration(version: str, sql: str) -> Migration:
    statements, problems = split_statements(sql, f"{version}.sql")
    assert problems == []
    path = Path(f"/m/{version}_m.sql")
    return Migration(
        version, "m", path, sql, version, Header(), statements, None, (), checksum_text(sql)
    )


class CountingLinter(Linter):
    """A Linter that counts the files it runs the rules over."""

    def __init__(self) -> None:
        super().__init__(16, fixes=False)
        self.linted: list[str] = []

    def lint_file(self, text: str, file: str, *args: object, **kwargs: object) -> list[Finding]:
        self.linted.append(file)
        return super().lint_file(text, file, *args, **kwargs)  # type: ignore[arg-type]


def codes(findings: list[Finding]) -> set[str]:
    return {f.code for f in findings}


def keys(migrations: list[Migration], **options: object) -> list[str]:
    settings = {"pg_major": 16, "fixes": False, **options}
    return chain_keys(migrations, frozenset(), **settings)  # type: ignore[arg-type]


def test_an_edit_changes_the_key_of_its_migration_and_of_every_later_one() -> None:
    a, b, c = migration("1", ADD_CHECK), migration("2", SET_NOT_NULL), migration("3", "SELECT 1;")
    before = keys([a, b, c])
    assert keys([a, b, c]) == before
    edited = migration("2", SET_NOT_NULL.replace("email", "name"))
    after = keys([a, edited, c])
    assert after[0] == before[0]
    assert after[1] != before[1] and after[2] != before[2]
    assert keys([a, b, c], pg_major=18) != before  # another target version: nothing reused
    assert keys([a, b, c], fixes=True) != before  # findings with fixes are other findings
    assert (
        chain_keys([a, b, c], frozenset({str(b.path)}), pg_major=16, fixes=False)[1:]
        != (before[1:])
    )


def test_a_memo_hit_is_not_linted_and_an_appended_migration_learns_from_the_others() -> None:
    """The later SET NOT NULL is cheap because of the earlier validated check: the memo must
    not lose that when only the new migration is linted."""
    memo = LintMemo()
    first = [migration("1", ADD_CHECK), migration("2", BLOCKING_INDEX)]
    linter = CountingLinter()
    cold = linter.lint_migrations(first, memo=memo)
    assert "require-concurrent-index" in codes(cold)
    assert len(linter.linted) == 2 and memo.changed

    again = LintMemo.from_bytes(memo.to_bytes())
    linter = CountingLinter()
    assert linter.lint_migrations(first, memo=again) == cold
    assert linter.linted == [] and not again.changed

    longer = [*first, migration("3", SET_NOT_NULL)]
    linter = CountingLinter()
    found = linter.lint_migrations(longer, memo=again)
    assert linter.linted == [str(longer[2].path)]
    assert found == Linter(16, fixes=False).lint_migrations(longer)
    assert "set-not-null" not in codes(found)


def test_editing_an_earlier_migration_lints_it_and_every_later_one_again() -> None:
    memo = LintMemo()
    project = [migration("1", ADD_CHECK), migration("2", SET_NOT_NULL)]
    Linter(16, fixes=False).lint_migrations(project, memo=memo)
    edited = [migration("1", ADD_CHECK.replace("email", "name")), project[1]]
    linter = CountingLinter()
    found = linter.lint_migrations(edited, memo=memo)
    assert linter.linted == [str(m.path) for m in edited]
    assert "set-not-null" in codes(found)  # no check proves email any more


def test_the_memo_keeps_only_the_entries_of_the_project_as_it_is() -> None:
    memo = LintMemo()
    project = [migration("1", BLOCKING_INDEX), migration("2", "SELECT 1;")]
    Linter(16, fixes=False).lint_migrations(project, memo=memo)
    shorter = LintMemo.from_bytes(memo.to_bytes())
    Linter(16, fixes=False).lint_migrations(project[:1], memo=shorter)
    assert shorter.changed  # the dropped migration's entry goes
    assert LintMemo.from_bytes(shorter.to_bytes()).recall(keys(project[:1])) is not None
    assert LintMemo.from_bytes(shorter.to_bytes()).recall(keys(project)) is None


@pytest.mark.parametrize(
    "data",
    [b"", b"not json", b"[]", b'{"format": 99, "entries": {}}', b'{"format": 1, "entries": 3}'],
)
def test_an_unreadable_memo_is_an_empty_one(data: bytes) -> None:
    memo = LintMemo.from_bytes(data)
    assert memo.recall(keys([migration("1", "SELECT 1;")])) is None


def test_a_damaged_entry_is_linted_again() -> None:
    memo = LintMemo()
    project = [migration("1", BLOCKING_INDEX)]
    cold = Linter(16, fixes=False).lint_migrations(project, memo=memo)
    (key,) = keys(project)
    damaged = LintMemo({key: [["require-concurrent-index", "fatal", "f", 1, 1, "m", "h", None]]})
    linter = CountingLinter()
    assert linter.lint_migrations(project, memo=damaged) == cold
    assert linter.linted == [str(project[0].path)]


def test_a_finding_with_a_fix_comes_back_with_it() -> None:
    memo = LintMemo()
    project = [migration("1", BLOCKING_INDEX)]
    cold = Linter(16).lint_migrations(project, memo=memo)
    fixed = [f for f in cold if f.fix is not None]
    assert [f.code for f in fixed] == ["require-concurrent-index"]
    warm = LintMemo.from_bytes(memo.to_bytes()).recall(keys(project, fixes=True))
    assert warm == cold
    assert [f.fix for f in warm or [] if f.fix is not None] == [fixed[0].fix]
