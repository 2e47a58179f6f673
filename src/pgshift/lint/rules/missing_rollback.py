"""Rule missing-rollback: a migration without its ``_rollback.sql`` file."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint.context import FileFacts
from pgshift.lint.registry import Hit, Rule, register


@register
class MissingRollback(Rule):
    code = "missing-rollback"
    category = "file"
    summary = "a migration has no rollback file, so `rollback` cannot revert it"
    help = (
        "write <version>_<description>_rollback.sql beside it; for a truly irreversible"
        " migration say so with -- @lint-ignore: missing-rollback"
    )
    scope = "project"

    def check_file(self, facts: FileFacts) -> Iterator[Hit]:
        m = facts.migration
        if facts.rollback or m is None or m.rollback is not None:
            return
        yield Hit(
            f"no rollback file: expected {m.path.stem}_rollback.sql beside it, so"
            " `pgshift rollback` cannot revert this migration",
            line=1,
        )
