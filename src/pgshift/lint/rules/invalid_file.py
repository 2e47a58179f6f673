"""Rule invalid-file: a file pgshift cannot use (name, header, dependency, SQL that fails to parse).

It has no statement check: it is produced from the loader's problems, and registered so that
its code, severity and docs page live with every other rule's.
"""

from __future__ import annotations

from pgshift.lint.registry import Rule, register


@register
class InvalidFile(Rule):
    code = "invalid-file"
    category = "file"
    summary = "a file pgshift cannot use: bad name, header, dependency, or SQL that does not parse"
    help = "fix the file; nothing is applied while any file has this kind of problem"
    scope = "project"
