"""Rule checksum-drift: an applied migration's file changed after it was applied.

It has no statement check: it is checked against the history when a database is
configured, and registered so that its code, severity and docs page live with every other rule's.
"""

from __future__ import annotations

from pgshift.lint.registry import Rule, register


@register
class ChecksumDrift(Rule):
    code = "checksum-drift"
    category = "file"
    summary = "an applied migration's file changed after it was applied"
    help = "restore the file as it was applied; write a new migration for the change"
    scope = "database"
