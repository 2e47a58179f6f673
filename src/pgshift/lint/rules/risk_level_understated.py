"""Rule risk-level-understated: ``@risk-level: low`` on a file that destroys data or schema."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint.context import FileFacts
from pgshift.lint.registry import RULES, Hit, Rule, register

_DATA_DELETES = {"DeleteStmt": "DELETE", "TruncateStmt": "TRUNCATE"}


@register
class RiskLevelUnderstated(Rule):
    code = "risk-level-understated"
    severity = "warning"
    category = "file"
    summary = "@risk-level: low on a file that drops, changes types or deletes data"
    help = "say @risk-level: high (or medium) so that reviewers and the deploy treat it so"
    scope = "file"

    def check_file(self, facts: FileFacts) -> Iterator[Hit]:
        if facts.rollback or facts.header.risk_level != "low":
            return
        reasons = [
            f"line {f.line} ({f.code})"
            for f in facts.raw
            if (r := RULES.get(f.code)) is not None and r.destructive
        ]
        reasons += [
            f"line {s.line} ({_DATA_DELETES[s.kind]})"
            for s in facts.statements
            if s.kind in _DATA_DELETES
        ]
        if reasons:
            yield Hit(
                "the header says @risk-level: low, but the file destroys data or schema: "
                + ", ".join(sorted(set(reasons), key=_line)),
                line=facts.header.line_of("risk-level"),
            )


def _line(reason: str) -> int:
    return int(reason.split()[1])
