"""Rule missing-estimated-duration: a file that rewrites or scans a table says nothing of time."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint.context import FileFacts
from pgshift.lint.registry import RULES, Hit, Rule, register


@register
class MissingEstimatedDuration(Rule):
    code = "missing-estimated-duration"
    severity = "warning"
    category = "file"
    summary = "no @estimated-duration on a file whose run time grows with a table's size"
    help = (
        "measure it on a copy of production and add -- @estimated-duration: 5 minutes;"
        " `pgshift status` compares it with the real time"
    )
    scope = "file"

    def check_file(self, facts: FileFacts) -> Iterator[Hit]:
        if facts.rollback or facts.header.estimated_duration_ms is not None:
            return
        slow = [f for f in facts.raw if (r := RULES.get(f.code)) is not None and r.rewrites]
        if slow:
            first = slow[0]
            yield Hit(
                f"line {first.line} ({first.code}) rewrites or scans a whole table, and the"
                " header gives no @estimated-duration to plan the deploy with",
                line=1,
            )
