"""Rule unused-ignore: an ignore comment or @lint-ignore that silenced nothing.

It has no statement check: it is produced by the engine (ignore.py), and registered so that
its code, severity and docs page live with every other rule's.
"""

from __future__ import annotations

from pgshift.lint.registry import Rule, register


@register
class UnusedIgnore(Rule):
    code = "unused-ignore"
    severity = "warning"
    category = "file"
    summary = "an ignore comment or @lint-ignore that silenced nothing"
    help = "remove the code from the ignore comment, or fix its spelling"
    scope = "file"
