"""Rule trace-disagrees: validate --trace saw the server do something other than predicted.

It has no statement check: ops/trace.py compares what the rules and the lock table
(source/locks.py) predicted with the locks and rewrites the server showed, and registers the
code here so that its severity and docs page live with every other rule's.
"""

from __future__ import annotations

from pgshift.lint.registry import Rule, register


@register
class TraceDisagrees(Rule):
    code = "trace-disagrees"
    severity = "warning"
    category = "locking"
    summary = "the server took other locks or rewrote other tables than the linter predicted"
    help = (
        "trust the server: adjust the migration to what it did, and report the rule that"
        " predicted otherwise"
    )
    scope = "database"
