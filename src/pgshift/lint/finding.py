"""The Finding value every check produces (with its rule page and fix), and its renderings.

Text, JSON and GitHub are here; SARIF, which needs the whole run at once, is lint/sarif.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, Literal, get_args

from pgshift import config

if TYPE_CHECKING:
    from collections.abc import Iterable

    from pgshift.errors import Problem

#: What happens to production (SPEC section 4): ``error`` blocks reads or writes for a time
#: that grows with the table, rewrites it, fails on existing data, breaks running code or
#: destroys data; ``warning`` is a risk that depends on facts the linter cannot see; ``note``
#: is a change of behaviour that blocks and breaks nothing. Only errors fail `validate`.
Severity = Literal["error", "warning", "note"]
SEVERITIES: tuple[Severity, ...] = get_args(Severity)

#: What kind of harm a rule is about (SPEC section 2), declared on each registered rule.
Category = Literal[
    "locking", "rewrite", "failure", "compatibility", "data-loss", "semantics", "style", "file"
]
CATEGORIES: tuple[Category, ...] = get_args(Category)

INVALID_FILE = "invalid-file"

#: Where the rule pages are published (config.py); the `docs_url` setting (PGSHIFT_DOCS_URL)
#: overrides it. Links are absolute so that they work from a CI log, a SARIF viewer or JSON.
DEFAULT_DOCS_URL = config.DEFAULT_DOCS_URL


def rule_url(code: str, base: str = DEFAULT_DOCS_URL) -> str:
    """The documentation page of rule ``code`` under ``base`` (the `docs_url` setting)."""
    return f"{base.rstrip('/')}/{code}.md"


@dataclass(frozen=True)
class Fix:
    """The safe form of one statement: its replacement here, and a later migration if needed.

    ``hunks`` is the unified diff of the file (without the ``---``/``+++`` header, which
    `diff` adds for the path the finding is shown under); ``follow_up`` is the SQL of a new
    migration named ``follow_up_name`` (in the same folder) that must run after this one.
    """

    summary: str
    original: str
    replacement: str
    hunks: str
    follow_up: str | None = None
    follow_up_name: str | None = None

    def diff(self, path: str) -> str:
        """The whole fix as one unified diff, the file shown as ``path``."""
        parts = [f"--- a/{path}\n+++ b/{path}\n{self.hunks}"]
        if self.follow_up is not None and self.follow_up_name is not None:
            new_path = str(PurePath(path).parent / self.follow_up_name)
            lines = self.follow_up.splitlines()
            body = "".join(f"+{line}\n" for line in lines)
            parts.append(f"--- /dev/null\n+++ b/{new_path}\n@@ -0,0 +1,{len(lines)} @@\n{body}")
        return "".join(parts).rstrip("\n")


@dataclass(frozen=True)
class Finding:
    """One problem at one place, with the reason it is a problem and the safe way instead.

    ``category`` is the registered rule's (lint/registry.py); left empty, it is looked up
    there, so that a finding can never carry another category than its rule declares.
    """

    code: str
    severity: Severity
    file: str
    line: int
    column: int
    message: str
    help: str
    # The mechanical safe form, when there is one (lint/fixes.py); not part of the identity.
    fix: Fix | None = field(default=None, compare=False)
    category: Category | Literal[""] = field(default="", kw_only=True)

    def __post_init__(self) -> None:
        if not self.category:
            from pgshift.lint.registry import rule

            object.__setattr__(self, "category", rule(self.code).category)

    @property
    def url(self) -> str:
        """The rule's page under the default base; `url_at` takes the `docs_url` setting."""
        return rule_url(self.code)

    def url_at(self, docs_url: str) -> str:
        return rule_url(self.code, docs_url)

    def fix_diff(self) -> str | None:
        """The fix as a unified diff against this finding's file as shown, or None."""
        return self.fix.diff(self.file) if self.fix is not None else None

    def to_json(self, docs_url: str = DEFAULT_DOCS_URL) -> dict[str, Any]:
        """The SPEC's shape, every field by name, plus the rule page and the fix (a diff)."""
        return {
            "code": self.code,
            "severity": self.severity,
            "category": self.category,
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "message": self.message,
            "help": self.help,
            "url": self.url_at(docs_url),
            "fix": self.fix_diff(),
        }

    def as_error(self) -> Finding:
        """The same finding as an error, for `validate --strict`: warnings only.

        A note describes a change of behaviour that blocks and breaks nothing; making it an
        error would fail every build that drops a trigger, so `--strict` leaves notes alone.
        """
        return replace(self, severity="error") if self.severity == "warning" else self

    def sort_key(self) -> tuple[str, int, int, str, str]:
        return self.file, self.line, self.column, self.code, self.message


def render_text(finding: Finding, source: str | None, docs_url: str = DEFAULT_DOCS_URL) -> str:
    """``file:line:col: severity[code] message``, the offending line with a caret, the help,
    the category and the rule's page, and the fix.

    ``source`` is the text of the file, or None when it cannot be shown (a file that is gone).
    """
    head = (
        f"{finding.file}:{finding.line}:{finding.column}: "
        f"{finding.severity}[{finding.code}] {finding.message}"
    )
    lines = [head]
    text_line = _line_of(source, finding.line)
    if text_line is not None and text_line.strip():
        number = str(finding.line)
        gutter = " " * len(number)
        # Tabs keep their width so that the caret lands under the right character.
        prefix = "".join(
            ch if ch == "\t" else " " for ch in text_line[: max(finding.column - 1, 0)]
        )
        lines.append(f" {number} | {text_line}")
        lines.append(f" {gutter} | {prefix}^")
    if finding.help:
        lines.append(f"  help: {finding.help}")
    lines.append(f"  category: {finding.category} · docs: {finding.url_at(docs_url)}")
    diff = finding.fix_diff()
    if finding.fix is not None and diff is not None:
        lines.append(f"  fix: {finding.fix.summary}")
        lines.extend(f"    {line}".rstrip() for line in diff.splitlines())
    return "\n".join(lines)


def _line_of(source: str | None, line: int) -> str | None:
    if source is None or line < 1:
        return None
    lines = source.splitlines()
    return lines[line - 1].rstrip() if line <= len(lines) else None


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


#: GitHub's workflow commands: a note is a ``notice`` annotation.
_GITHUB_LEVELS: dict[str, str] = {"error": "error", "warning": "warning", "note": "notice"}


def render_github(finding: Finding, docs_url: str = DEFAULT_DOCS_URL) -> str:
    """A GitHub Actions workflow command, so that findings show up on the pull request's diff."""
    level = _GITHUB_LEVELS[finding.severity]
    props = ",".join(
        [
            f"file={_escape_property(finding.file)}",
            f"line={finding.line}",
            f"col={max(finding.column, 1)}",
            f"title={_escape_property(finding.code)}",
        ]
    )
    body = (
        finding.message
        + (f"\n{finding.help}" if finding.help else "")
        + f"\n{finding.url_at(docs_url)}"
    )
    return f"::{level} {props}::{_escape_data(body)}"


def problem_findings(problems: Iterable[Problem], severity: str = "error") -> list[Finding]:
    """Loader problems as findings (transaction control is left to its own rule)."""
    from pgshift.lint.registry import finding_for
    from pgshift.source.loader import TRANSACTION_CONTROL_MESSAGE

    level: Severity = "error" if severity == "error" else "warning"
    return [
        finding_for(INVALID_FILE, p.file, p.line, p.column or 1, p.message, severity=level)
        for p in problems
        if p.message != TRANSACTION_CONTROL_MESSAGE
    ]
