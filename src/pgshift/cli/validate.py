"""The `validate` verb: flags, then findings as text with carets, JSON or GitHub annotations."""

from __future__ import annotations

import argparse
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pgshift
from pgshift.cli.commands import settings_from
from pgshift.cli.render import Output
from pgshift.errors import UsageError
from pgshift.lint.finding import Finding, render_github, render_text

_MIN_MAJOR, _MAX_MAJOR = 9, 99


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add `validate` to the parser."""
    p = sub.add_parser(
        "validate", parents=[common], help="check every migration file and lint its SQL"
    )
    p.add_argument("--json", action="store_true", help='print {"ok", "findings"} as JSON')
    p.add_argument(
        "--format",
        choices=["text", "json", "github"],
        default=None,
        help="output format; github prints workflow annotations",
    )
    p.add_argument("--strict", action="store_true", help="treat warnings as errors")
    p.add_argument(
        "--roundtrip",
        action="store_true",
        help="apply, roll back and re-apply each migration on a scratch database",
    )
    p.add_argument(
        "--scratch-url",
        metavar="URL",
        help="server for --roundtrip (a database is created and dropped there); default: the"
        " embedded server",
    )
    p.add_argument(
        "--pg-version",
        metavar="MAJOR",
        help="PostgreSQL version the rules assume (default: the connected server, else newest)",
    )
    p.set_defaults(handler=cmd_validate)


def _major(text: str | None) -> int | None:
    if text is None:
        return None
    head = text.strip().split(".", 1)[0]
    if not head.isdigit() or not _MIN_MAJOR <= int(head) <= _MAX_MAJOR:
        raise UsageError(f"--pg-version {text!r}: expected a major version such as 16")
    return int(head)


def _shown(finding: Finding, cwd: str) -> Finding:
    """Paths relative to the working directory, as editors and GitHub annotations want."""
    path = finding.file
    if os.path.isabs(path):
        rel = os.path.relpath(path, cwd)
        if not rel.startswith(".."):
            return replace(finding, file=rel)
    return finding


def cmd_validate(args: argparse.Namespace, out: Output) -> int:
    settings = settings_from(args)
    fmt = "json" if args.json else (args.format or "text")
    report = pgshift.validate(
        settings,
        strict=args.strict,
        pg_major=_major(args.pg_version),
        roundtrip=args.roundtrip,
        scratch_url=args.scratch_url,
    )
    cwd = os.getcwd()
    findings = [_shown(f, cwd) for f in report.findings]
    trip = _roundtrip_summary(findings) if args.roundtrip else None
    if fmt == "json":
        data: dict[str, Any] = {"ok": report.ok, "findings": [f.to_json() for f in findings]}
        if trip is not None:
            data["roundtrip"] = trip
        out.json(data)
    elif fmt == "github":
        for f in findings:
            out.line(render_github(f))
    elif out.quiet:
        for f in findings:
            if f.severity == "error":
                out.plain_error(f"{f.file}:{f.line}:{f.column}: [{f.code}] {f.message}")
    else:
        _print_text(out, findings, report)
        if trip is not None:
            out.line(_roundtrip_line(trip))
    return 0 if report.ok else 1


#: The finding codes ops/roundtrip.py reports.
ROUNDTRIP_CODES = frozenset(
    {"apply-failed", "rollback-failed", "rollback-incomplete", "reapply-mismatch"}
)


def _roundtrip_summary(findings: list[Finding]) -> dict[str, Any]:
    """That the round trip ran and what it found: a pass must be told apart from a skip."""
    problems = [f for f in findings if f.code in ROUNDTRIP_CODES]
    return {
        "ran": True,
        "ok": not any(f.severity == "error" for f in problems),
        "problems": len(problems),
    }


def _roundtrip_line(trip: dict[str, Any]) -> str:
    if trip["problems"] == 0:
        return (
            "round trip: every migration applied, reverted and applied again on a scratch"
            " database; each rollback restored the schema exactly"
        )
    return f"round trip: {trip['problems']} problem(s) found on a scratch database (above)"


def _print_text(out: Output, findings: list[Finding], report: pgshift.ValidateReport) -> None:
    sources: dict[str, str | None] = {}
    for f in findings:
        if f.file not in sources:
            try:
                sources[f.file] = Path(f.file).read_text(encoding="utf-8", errors="replace")
            except OSError:
                sources[f.file] = None
        out.line(render_text(f, sources[f.file]))
        out.line()
    errors = sum(1 for f in findings if f.severity == "error")
    warnings = len(findings) - errors
    where = "" if report.database_checked else " (no database configured: drift not checked)"
    if not findings:
        out.line(f"no problems found{where}")
    else:
        out.line(f"{errors} error(s), {warnings} warning(s){where}")
