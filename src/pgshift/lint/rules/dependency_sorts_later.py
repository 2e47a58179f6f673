"""Rule dependency-sorts-later: a migration depends on one whose version is newer."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint.context import FileFacts
from pgshift.lint.registry import Hit, Rule, register


@register
class DependencySortsLater(Rule):
    code = "dependency-sorts-later"
    severity = "warning"
    category = "file"
    summary = "a migration depends on one that sorts after it"
    help = (
        "give the dependent migration a newer version than its dependency, so that the file"
        " order, `status` and other tools agree with the plan order"
    )
    scope = "project"

    def check_file(self, facts: FileFacts) -> Iterator[Hit]:
        m = facts.migration
        if facts.rollback or m is None:
            return
        for dep in m.dependencies:
            if dep > m.version:
                yield Hit(
                    f"depends on {dep}, which sorts after this migration ({m.version}): pgshift"
                    " applies it first, but anyone reading the files in order will not",
                    line=facts.header.line_of("dependencies"),
                )
