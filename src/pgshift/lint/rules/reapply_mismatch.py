"""Rule reapply-mismatch: re-applying a migration after its rollback fails or differs.

It has no statement check: it is found by validate --roundtrip, and registered so that
its code, severity and docs page live with every other rule's.
"""

from __future__ import annotations

from pgshift.lint.registry import Rule, register


@register
class ReapplyMismatch(Rule):
    code = "reapply-mismatch"
    category = "failure"
    summary = "applying a migration again after its rollback fails or gives another schema"
    help = "make the rollback restore exactly what the migration expects"
    scope = "database"
