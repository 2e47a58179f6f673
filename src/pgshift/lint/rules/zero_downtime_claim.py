"""Rule zero-downtime-claim: ``@zero-downtime: true`` on a file that blocks an existing table.

`pgshift up` refuses to apply a file with this finding: the claim is what reviewers and
deploy tooling trust, so a wrong one must stop the deploy, not merely be printed.
"""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint.context import FileFacts
from pgshift.lint.registry import RULES, Hit, Rule, register

MAX_LISTED = 5


@register
class ZeroDowntimeClaim(Rule):
    code = "zero-downtime-claim"
    category = "file"
    summary = "@zero-downtime: true on a file with a statement that blocks reads or writes"
    help = (
        "make the blocking statements safe (see their own findings), or say"
        " @zero-downtime: false and plan a maintenance window"
    )
    scope = "file"

    def check_file(self, facts: FileFacts) -> Iterator[Hit]:
        if facts.rollback or facts.header.zero_downtime is not True:
            return
        # A hit its rule only suspects (a lower severity than the rule's) does not break it.
        blocking = [
            f
            for f in facts.kept
            if (r := RULES.get(f.code)) is not None and r.blocks and f.severity == r.severity
        ]
        if not blocking:
            return
        listed = ", ".join(f"line {f.line} ({f.code})" for f in blocking[:MAX_LISTED])
        more = f" and {len(blocking) - MAX_LISTED} more" if len(blocking) > MAX_LISTED else ""
        verb = "blocks" if len(blocking) == 1 else "block"
        yield Hit(
            f"the header claims @zero-downtime: true, but {listed}{more} {verb} reads or writes"
            " of an existing table; pgshift up refuses to apply this file",
            line=facts.header.line_of("zero-downtime"),
        )
