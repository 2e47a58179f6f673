"""Rule rollback-failed: a rollback file fails, or cannot be tried, during validate --roundtrip.

It has no statement check: it is found by validate --roundtrip, and registered so that
its code, severity and docs page live with every other rule's.
"""

from __future__ import annotations

from pgshift.lint.registry import Rule, register


@register
class RollbackFailed(Rule):
    code = "rollback-failed"
    category = "failure"
    summary = "a rollback file fails, or cannot be tried, during validate --roundtrip"
    help = "fix the rollback SQL so that it runs after the migration"
    scope = "database"
