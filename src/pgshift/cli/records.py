"""The `history` and `mark` verbs: the recorded runs, and a migration recorded by hand."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from pgshift.cli.flags import settings_from
from pgshift.cli.render import Output, write
from pgshift.durations import format_duration_ms
from pgshift.errors import UsageError

if TYPE_CHECKING:
    from pgshift.db.journal import LogEntry
    from pgshift.ops.journal import RunRecord

#: Detail keys worth a word on an event's line, in this order (the rest is in --json).
_DETAIL_KEYS = (
    "duration_ms",
    "reason",
    "error",
    "message",
    "sqlstate",
    "line",
    "backup_id",
    "id",
    "baseline",
    "holder",
    "signal",
)


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add `history` and `mark` to the parser."""
    p = sub.add_parser(
        "history",
        parents=[common],
        help="the runs recorded in the database: who did what, when, from where, how it ended",
    )
    p.add_argument("--json", action="store_true", help='print {"runs": [...]} as JSON')
    p.add_argument(
        "--limit", type=int, default=20, metavar="N", help="the N newest runs (default 20)"
    )
    p.add_argument("--run", metavar="ID", help="only the run whose id starts with ID")
    p.set_defaults(handler=cmd_history)

    p = sub.add_parser(
        "mark",
        parents=[common],
        help="record by hand that a migration is or is not applied, after a manual repair",
    )
    p.add_argument("version", metavar="VERSION", help="the migration's version (14 digits)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--applied", action="store_true", help="record it as applied, from its file")
    which.add_argument(
        "--not-applied",
        action="store_true",
        help="record it as not applied (its row and progress removed)",
    )
    p.add_argument("--reason", metavar="TEXT", help="why (logged; asked for on a terminal)")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=cmd_mark)


# -- history ----------------------------------------------------------------------------------


def cmd_history(args: argparse.Namespace, out: Output) -> int:
    import pgshift

    report = pgshift.run_history(settings_from(args), limit=args.limit, run=args.run)
    if args.json:
        out.json(report.to_json())
        return 0
    if not report.runs:
        out.line("no runs recorded in this database yet")
        return 0
    for i, run in enumerate(report.runs):
        if i:
            out.line()
        _print_run(out, run)
    return 0


def _print_run(out: Output, run: RunRecord) -> None:
    from pgshift.cli.colour import paint

    who = run.user or "?"
    if run.host:
        who += f"@{run.host}"
    took = f" · {format_duration_ms(run.duration_ms)}" if run.duration_ms is not None else ""
    outcome = paint(run.outcome, _OUTCOME_STYLE.get(run.outcome, ""), sys.stdout)
    out.line(
        f"run {run.run_id or '(none)'} · {run.kind} · {outcome}"
        f" · {run.started_at:%Y-%m-%d %H:%M:%S %Z}{took} · {who} (role {run.db_user})"
    )
    for label, versions in (
        ("applied", run.applied),
        ("reverted", run.reverted),
        ("contracted", run.contracted),
        ("failed", run.failed),
    ):
        if versions:
            out.line(f"  {label}: {', '.join(versions)}")
    if run.error:
        out.line(f"  error: {run.error.splitlines()[0]}")
    samples = [e for e in run.events if e.event == "health_sample"]
    for event in run.events:
        if event.event == "health_sample" and not out.verbose:
            continue
        out.line(_event_line(event))
    if samples and not out.verbose:
        out.line(f"    ({len(samples)} health sample(s); -v shows them)")


_OUTCOME_STYLE = {
    "finished": "green",
    "recorded": "green",
    "failed": "red",
    "interrupted": "red",
    "unfinished": "yellow",
}


def _event_line(event: LogEntry) -> str:
    words = [f"    {event.at:%H:%M:%S.%f}"[:-3], event.event]
    if event.version:
        words.append(event.version)
    for key in _DETAIL_KEYS:
        value = event.detail.get(key)
        if value is None or value == "":
            continue
        text = format_duration_ms(int(value)) if key == "duration_ms" else str(value)
        words.append(f"{key}={text.splitlines()[0] if text else text}")
    return "  ".join(words)


# -- mark -------------------------------------------------------------------------------------


def _reason_and_consent(args: argparse.Namespace, out: Output, what: str) -> str:
    """The reason (asked for on a terminal when not given) and the confirmation (unless
    --yes); without a terminal both must be on the command line."""
    reason: str | None = args.reason
    if not sys.stdin.isatty():
        if not (reason and reason.strip()) or not args.yes:
            raise UsageError(
                f"refusing to record {what} without a reason and confirmation: there is no"
                " terminal to ask on",
                hint="pass --reason TEXT and --yes",
            )
        return reason
    while not (reason and reason.strip()):
        reason = out.ask("Why (logged with the change)? ").strip()
        if not reason:
            write(sys.stderr, "a reason is required\n")
    if not args.yes:
        answer = out.ask(f"Record {what}? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            raise UsageError("cancelled: nothing was recorded")
    return reason


def cmd_mark(args: argparse.Namespace, out: Output) -> int:
    import pgshift

    applied = bool(args.applied)
    what = f"{args.version} as {'applied' if applied else 'not applied'}"
    reason = _reason_and_consent(args, out, what)
    result = pgshift.mark(settings_from(args), args.version, applied=applied, reason=reason)
    for text in result.warnings:
        write(sys.stderr, f"warning: {text}\n")
    if args.json:
        out.json(
            {
                "version": result.version,
                "applied": result.applied,
                "before": result.before,
                "changed": result.changed,
                "run_id": result.run_id,
                "reason": result.reason,
                "warnings": list(result.warnings),
            }
        )
    elif result.changed:
        out.line(f"recorded {what} (it was {result.before}); run {result.run_id}")
    else:
        state = "applied" if applied else "not applied"
        out.line(f"{args.version} is already recorded as {state}: nothing changed")
    return 0
