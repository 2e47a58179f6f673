"""The Finding value every check produces, and its three renderings: text, JSON and GitHub."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    """One problem at one place, with the reason it is a problem and the safe way instead."""

    code: str
    severity: Severity
    file: str
    line: int
    column: int
    message: str
    help: str

    def to_json(self) -> dict[str, Any]:
        """The SPEC's shape: every field, by name."""
        return asdict(self)

    def as_error(self) -> Finding:
        """The same finding as an error, for `validate --strict`."""
        return replace(self, severity="error")

    def sort_key(self) -> tuple[str, int, int, str, str]:
        return self.file, self.line, self.column, self.code, self.message


def render_text(finding: Finding, source: str | None) -> str:
    """``file:line:col: severity[code] message``, the offending line with a caret, and the fix.

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


def render_github(finding: Finding) -> str:
    """A GitHub Actions workflow command, so that findings show up on the pull request's diff."""
    level = "error" if finding.severity == "error" else "warning"
    props = ",".join(
        [
            f"file={_escape_property(finding.file)}",
            f"line={finding.line}",
            f"col={max(finding.column, 1)}",
            f"title={_escape_property(finding.code)}",
        ]
    )
    body = finding.message + (f"\n{finding.help}" if finding.help else "")
    return f"::{level} {props}::{_escape_data(body)}"
