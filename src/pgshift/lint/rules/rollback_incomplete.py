"""Rule rollback-incomplete: after the rollback the schema differs from before the migration.

It has no statement check: it is found by validate --roundtrip, and registered so that
its code, severity and docs page live with every other rule's.
"""

from __future__ import annotations

from pgshift.lint.registry import Rule, register


@register
class RollbackIncomplete(Rule):
    code = "rollback-incomplete"
    category = "failure"
    summary = "after the rollback the schema differs from before the migration"
    help = "undo every object the migration creates or changes"
    scope = "database"
