"""The `validate` verb: flags, then findings as text with carets, JSON, GitHub or SARIF."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pgshift
from pgshift.cli.colour import SEVERITY_STYLE, paint, wanted
from pgshift.cli.flags import settings_from
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
        choices=["text", "json", "github", "sarif"],
        default=None,
        help="output format; github prints workflow annotations, sarif a SARIF 2.1.0 log",
    )
    p.add_argument(
        "--strict", action="store_true", help="treat warnings as errors (notes stay notes)"
    )
    p.add_argument(
        "--roundtrip",
        action="store_true",
        help="apply, roll back and re-apply each migration on a scratch database",
    )
    p.add_argument(
        "--trace",
        action="store_true",
        help="run the pending migrations on a scratch database and report the locks each"
        " statement took and the tables it rewrote",
    )
    p.add_argument(
        "--scratch-url",
        metavar="URL",
        help="server for --roundtrip and --trace (a database is created and dropped there);"
        " default: the embedded server",
    )
    p.add_argument(
        "--since",
        metavar="VERSION",
        help="lint findings in migrations up to VERSION are history: not counted, hidden"
        " (default: lint_since, which import and baseline set)",
    )
    p.add_argument(
        "--all",
        dest="show_all",
        action="store_true",
        help="also show the findings hidden as history (marked, never counted)",
    )
    p.add_argument(
        "--pg-version",
        metavar="MAJOR",
        help="PostgreSQL version the rules assume (default: the connected server, else newest)",
    )
    p.set_defaults(handler=cmd_validate)

    e = sub.add_parser("explain", parents=[common], help="print a lint rule's page")
    e.add_argument("rule", metavar="RULE", help="the rule's code, e.g. set-not-null")
    e.set_defaults(handler=cmd_explain)


def cmd_explain(args: argparse.Namespace, out: Output) -> int:
    """The rule's page as it is shipped in the package (docs/rules/RULE.md)."""
    out.line(pgshift.explain(args.rule).rstrip("\n"))
    return 0


def _major(text: str | None) -> int | None:
    if text is None:
        return None
    head = text.strip().split(".", 1)[0]
    if not head.isdigit() or not _MIN_MAJOR <= int(head) <= _MAX_MAJOR:
        raise UsageError(f"--pg-version {text!r}: expected a major version such as 16")
    return int(head)


def _shown(finding: Finding, cwd: str) -> Finding:
    """Paths relative to the working directory, as editors and GitHub annotations want.

    A path plainly inside ``cwd`` (no ``.``, ``..`` or doubled separator to resolve) is cut
    at the prefix: relpath gives the same answer, slowly enough to show over the thousands of
    findings of a large project.
    """
    path = finding.file
    if not os.path.isabs(path):
        return finding
    prefix = cwd.rstrip(os.sep) + os.sep
    plain = f"{os.sep}." not in path and os.sep * 2 not in path and not path.endswith(os.sep)
    if plain and path.startswith(prefix):
        return replace(finding, file=path[len(prefix) :])
    rel = os.path.relpath(path, cwd)
    return finding if rel.startswith("..") else replace(finding, file=rel)


def cmd_validate(args: argparse.Namespace, out: Output) -> int:
    settings = settings_from(args)
    fmt = "json" if args.json else (args.format or "text")
    report = pgshift.validate(
        settings,
        strict=args.strict,
        pg_major=_major(args.pg_version),
        roundtrip=args.roundtrip,
        scratch_url=args.scratch_url,
        trace=args.trace,
        fixes=fmt in ("json", "sarif") or (fmt == "text" and not out.quiet),
        since=args.since,
    )
    cwd = os.getcwd()
    docs = settings.docs_url
    findings = [_shown(f, cwd) for f in report.findings]
    history = [_shown(f, cwd) for f in report.history] if args.show_all else []
    trip = _roundtrip_summary(findings) if args.roundtrip else None
    if fmt == "json":
        _print_json(out, findings, report, trip, cwd, history, docs)
    elif fmt == "sarif":
        out.json(_sarif(findings + [_as_history(f, report) for f in history], docs))
    elif fmt == "github":
        for f in findings + [_as_history(f, report) for f in history]:
            out.line(render_github(f, docs))
    elif out.quiet:
        for f in findings:
            if f.severity == "error":
                out.plain_error(f"{f.file}:{f.line}:{f.column}: [{f.code}] {f.message}")
    else:
        _print_text(out, findings, report, [_as_history(f, report) for f in history], docs)
        if report.trace is not None:
            _print_trace(out, _shown_trace(report.trace, cwd))
        if trip is not None:
            out.line(_roundtrip_line(trip))
    return 0 if report.ok else 1


def _print_json(
    out: Output,
    findings: list[Finding],
    report: pgshift.ValidateReport,
    trip: dict[str, Any] | None,
    cwd: str,
    history: list[Finding],
    docs_url: str,
) -> None:
    data: dict[str, Any] = {"ok": report.ok, "findings": [f.to_json(docs_url) for f in findings]}
    if report.since is not None:
        data["findings"] += [{**f.to_json(docs_url), "history": True} for f in history]
        data["history"] = {
            "since": report.since,
            "count": len(report.history),
            "shown": bool(history) or not report.history,
        }
    if report.trace is not None:
        data["trace"] = _shown_trace(report.trace, cwd).to_json()
    if trip is not None:
        data["roundtrip"] = trip
    out.json(data)


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


def _shown_trace(trace: pgshift.TraceReport, cwd: str) -> pgshift.TraceReport:
    def rel(path: str) -> str:
        if os.path.isabs(path):
            shown = os.path.relpath(path, cwd)
            return path if shown.startswith("..") else shown
        return path

    return replace(trace, statements=tuple(replace(s, file=rel(s.file)) for s in trace.statements))


def _first_line(sql: str, width: int = 72) -> str:
    line = " ".join(sql.split())
    return line if len(line) <= width else line[: width - 3] + "..."


def _print_trace(out: Output, trace: pgshift.TraceReport) -> None:
    where = "the target's schema" if trace.schema_from == "target" else "an empty database"
    out.line(f"trace: {len(trace.statements)} statement(s) run on a scratch copy of {where}")
    if trace.scratch:
        out.line(f"  (the {trace.scratch})")
    for s in trace.statements:
        out.line(f"{s.file}:{s.line}:{s.column}: {_first_line(s.sql)}")
        if s.error is not None:
            out.line(f"  failed: {s.error.splitlines()[0]} (the trace stopped here)")
            continue
        if s.ran_alone:
            documented = "; ".join(s.predicted) or "none"
            out.line(
                "  ran alone (outside a transaction), locks not observable;"
                f" documented: {documented}"
            )
        else:
            held = "; ".join(f"{lock.mode} on {lock.relation}" for lock in s.locks)
            out.line(f"  locks: {held or 'none on user tables'}")
        out.line(f"  rewrote: {', '.join(s.rewritten) or 'nothing'}")


def _sarif(findings: list[Finding], docs_url: str) -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    from pgshift.lint.registry import load_rules
    from pgshift.lint.sarif import render_sarif

    try:
        tool_version = version("pgshift")
    except PackageNotFoundError:  # running from a source tree that is not installed
        tool_version = ""
    summaries = {code: rule.summary for code, rule in load_rules().items()}
    return render_sarif(findings, summaries, version=tool_version, docs_url=docs_url)


def _as_history(finding: Finding, report: pgshift.ValidateReport) -> Finding:
    """A finding of the adopted history, marked as such wherever it is shown."""
    return replace(finding, message=f"(history, up to {report.since}) {finding.message}")


def _history_line(report: pgshift.ValidateReport, shown: bool) -> str | None:
    if not report.history:
        return None
    count = len(report.history)
    if shown:
        return (
            f"{count} finding(s) above are history (migrations up to {report.since},"
            " lint_since): not counted"
        )
    return (
        f"{count} finding(s) in migrations up to {report.since} hidden: history (lint_since),"
        " not counted; --all shows them"
    )


def _coloured(finding: Finding, text: str) -> str:
    """A finding's text with its ``severity[code]`` and caret in colour, on a terminal only."""
    if not wanted(sys.stdout):
        return text
    style = SEVERITY_STYLE[finding.severity]
    lines = text.split("\n")
    token = f"{finding.severity}[{finding.code}]"
    lines[0] = lines[0].replace(token, paint(token, style, sys.stdout), 1)
    for i, line in enumerate(lines[1:3], 1):  # the source line and the caret under it
        if line.endswith("^") and " | " in line:
            lines[i] = line[:-1] + paint("^", style, sys.stdout)
    return "\n".join(lines)


def _print_text(
    out: Output,
    findings: list[Finding],
    report: pgshift.ValidateReport,
    history: list[Finding],
    docs_url: str,
) -> None:
    sources: dict[str, str | None] = {}
    for f in findings + history:
        if f.file not in sources:
            try:
                sources[f.file] = Path(f.file).read_text(encoding="utf-8", errors="replace")
            except OSError:
                sources[f.file] = None
        out.line(_coloured(f, render_text(f, sources[f.file], docs_url)))
        out.line()
    errors = sum(1 for f in findings if f.severity == "error")
    notes = sum(1 for f in findings if f.severity == "note")
    warnings = len(findings) - errors - notes
    where = "" if report.database_checked else " (no database configured: drift not checked)"
    if not findings:
        out.line(paint("no problems found", "green", sys.stdout) + where)
    else:
        style = "bold red" if errors else "bold yellow" if warnings else ""
        counts = f"{errors} error(s), {warnings} warning(s), {notes} note(s)"
        out.line(paint(counts, style, sys.stdout) + where)
    summary = _history_line(report, shown=bool(history))
    if summary is not None:
        out.line(summary)
