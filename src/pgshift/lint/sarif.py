"""The SARIF 2.1.0 log of a validate run, for GitHub code scanning and other SARIF readers.

Why it is shaped this way: SARIF describes a whole run (the tool, its rules, then results that
point at the rules by index), so it is built from every finding at once rather than one line
per finding like the other renderings. Paths are relative URIs against ``%SRCROOT%`` (the
checkout), which is what code scanning matches against the repository; rule pages are the same
absolute links the other outputs carry (``helpUri``). SARIF's levels are pgshift's severities
(``note`` included). The category travels in ``properties`` (and as the rule's tag, which code
scanning shows), and a fix as the result's ``properties.fix`` (a unified diff), beside the
SARIF fields every reader understands.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import PurePath
from typing import Any
from urllib.parse import quote

from pgshift.lint.finding import DEFAULT_DOCS_URL, Finding, rule_url

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
VERSION = "2.1.0"
TOOL = "pgshift"
SRCROOT = "%SRCROOT%"


def _uri(path: str) -> str:
    """A relative, forward-slashed, percent-encoded URI for a file path."""
    posix = PurePath(path).as_posix() if os.sep == "/" else path.replace(os.sep, "/")
    return quote(posix.lstrip("/"), safe="/")


def _rule(code: str, summary: str, first: Finding, docs_url: str) -> dict[str, Any]:
    return {
        "id": code,
        "name": "".join(part.capitalize() for part in code.split("-")),
        "shortDescription": {"text": summary},
        "helpUri": rule_url(code, docs_url),
        "defaultConfiguration": {"level": first.severity},
        "properties": {"category": first.category, "tags": [first.category]},
    }


def _result(finding: Finding, index: int) -> dict[str, Any]:
    text = finding.message + (f"\n{finding.help}" if finding.help else "")
    result: dict[str, Any] = {
        "ruleId": finding.code,
        "ruleIndex": index,
        "level": finding.severity,
        "message": {"text": text},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": {"uri": _uri(finding.file), "uriBaseId": SRCROOT},
                    "region": {
                        "startLine": max(finding.line, 1),
                        "startColumn": max(finding.column, 1),
                    },
                }
            }
        ],
    }
    properties: dict[str, Any] = {"category": finding.category}
    diff = finding.fix_diff()
    if diff is not None:
        properties["fix"] = diff
    result["properties"] = properties
    return result


def render_sarif(
    findings: Sequence[Finding],
    summaries: Mapping[str, str],
    *,
    version: str = "",
    docs_url: str = DEFAULT_DOCS_URL,
) -> dict[str, Any]:
    """The SARIF log: one run, its rules (those with findings, in code order), its results.

    ``summaries`` maps rule codes to their one-line description (the rule registry's
    ``summary``); a code it lacks is described by its first finding's message.
    """
    codes = sorted({f.code for f in findings})
    first = {f.code: f for f in reversed(findings)}
    index = {code: i for i, code in enumerate(codes)}
    driver: dict[str, Any] = {
        "name": TOOL,
        "rules": [
            _rule(code, summaries.get(code) or first[code].message, first[code], docs_url)
            for code in codes
        ],
    }
    if version:
        driver["version"] = version
    return {
        "$schema": SCHEMA,
        "version": VERSION,
        "runs": [
            {
                "tool": {"driver": driver},
                "originalUriBaseIds": {SRCROOT: {"description": {"text": "the project root"}}},
                "results": [_result(f, index[f.code]) for f in findings],
            }
        ],
    }
