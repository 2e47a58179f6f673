"""Rule apply-failed: a migration fails on a scratch database during validate --roundtrip.

It has no statement check: it is found by validate --roundtrip, and registered so that
its code, severity and docs page live with every other rule's.
"""

from __future__ import annotations

from pgshift.lint.registry import Rule, register


@register
class ApplyFailed(Rule):
    code = "apply-failed"
    category = "failure"
    summary = "a migration fails on a scratch database during validate --roundtrip"
    help = "fix the migration: it would fail the same way in production"
    scope = "database"
