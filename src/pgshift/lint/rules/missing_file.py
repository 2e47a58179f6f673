"""Rule missing-file: a migration is recorded as applied but its file is gone.

It has no statement check: it is checked against the history when a database is
configured, and registered so that its code, severity and docs page live with every other rule's.
"""

from __future__ import annotations

from pgshift.lint.registry import Rule, register


@register
class MissingFile(Rule):
    code = "missing-file"
    category = "file"
    summary = "a migration is recorded as applied but its file is gone"
    help = "restore the file from version control"
    scope = "database"
