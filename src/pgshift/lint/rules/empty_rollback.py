"""Rule empty-rollback: a rollback file with no statement in it."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint.context import FileFacts
from pgshift.lint.registry import Hit, Rule, register


@register
class EmptyRollback(Rule):
    code = "empty-rollback"
    category = "file"
    summary = "a rollback file without SQL reverts nothing while claiming to"
    help = "write the statements that undo the migration, newest change first"
    scope = "project"

    def check_file(self, facts: FileFacts) -> Iterator[Hit]:
        if not facts.rollback or facts.statements or facts.has_problems:
            return
        if facts.migration is not None and not facts.migration.statements:
            return  # an empty migration has nothing to undo
        yield Hit(
            "the rollback file has no SQL statement: rolling back would record the migration"
            " as reverted and change nothing",
            line=1,
        )
