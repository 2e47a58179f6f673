"""Rule applied-file-problem: a file of an already applied migration has a problem.

It has no statement check: `pgshift up` reports it (as a warning: the file already ran, and
only a rollback that needs it refuses), and it is registered so that its code, severity and
docs page live with every other rule's; `validate` reports the same problem as invalid-file.
"""

from __future__ import annotations

from pgshift.lint.registry import Rule, register


@register
class AppliedFileProblem(Rule):
    code = "applied-file-problem"
    severity = "warning"
    category = "file"
    summary = "a file of an applied migration has a problem (an old rollback that does not parse)"
    help = "fix the file; `pgshift validate` reports it as an error"
    scope = "database"
