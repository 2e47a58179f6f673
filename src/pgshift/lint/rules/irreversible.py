"""Rule irreversible: `up` applies a migration marked irreversible, which rollback cannot undo.

It has no statement check: `pgshift up` reports it when it plans such a migration, and it is
registered so that its code, severity and docs page live with every other rule's.
"""

from __future__ import annotations

from pgshift.lint.registry import Rule, register


@register
class Irreversible(Rule):
    code = "irreversible"
    severity = "warning"
    category = "file"
    summary = "a planned migration is marked irreversible: `pgshift rollback` cannot revert it"
    help = "write its rollback file and drop the @lint-ignore to make it reversible"
    scope = "database"
