"""`pgshift fleet plan|up|status`: read the fleet flags, call the library, render per target."""

from __future__ import annotations

import argparse
import threading
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import pgshift
from pgshift import events as ev
from pgshift.cli.flags import settings_from
from pgshift.cli.render import Output
from pgshift.errors import UsageError

if TYPE_CHECKING:
    from pgshift.fleet_targets import TargetSpec
    from pgshift.ops.fleet import FleetResult, FleetStatus


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add `fleet` and its actions to the parser."""
    fleet = sub.add_parser("fleet", parents=[common], help="many databases or tenant schemas")
    fleet.set_defaults(handler=_need_action)
    actions = fleet.add_subparsers(dest="fleet_command", metavar="ACTION", parser_class=type(fleet))
    targets = argparse.ArgumentParser(add_help=False)
    targets.add_argument("--targets", metavar="FILE", help="a TOML file of [[target]] tables")
    targets.add_argument(
        "--targets-query", metavar="SQL", help="name, url, schema, labels from --control-url"
    )
    targets.add_argument(
        "--control-url", metavar="URL", help="control database (targets query, shared runs)"
    )
    targets.add_argument("--shard", metavar="I/N", help="only this worker's share of the targets")
    targets.add_argument("--concurrency", type=_positive, default=8, metavar="N")
    targets.add_argument("--json", action="store_true", help="print one JSON document")

    p = actions.add_parser("plan", parents=[common, targets], help="what up would do, per target")
    p.set_defaults(handler=cmd_fleet_plan)

    p = actions.add_parser("up", parents=[common, targets], help="apply to every target")
    p.add_argument("--canary", type=_positive, metavar="N", help="N targets first, then the rest")
    p.add_argument("--max-failures", type=_positive, metavar="K", help="stop after K failures")
    p.add_argument("--skip-backup", action="store_true", help="no backup before each target")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    p.add_argument("--run", metavar="NAME", help="the shared run (--control-url); default per set")
    p.add_argument("--lease", type=float, default=30.0, metavar="SECONDS", help="claim lease")
    p.set_defaults(handler=cmd_fleet_up)

    p = actions.add_parser("status", parents=[common, targets], help="one row per target")
    p.add_argument("--run", metavar="NAME", help="the shared run to show (--control-url)")
    p.set_defaults(handler=cmd_fleet_status)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _need_action(args: argparse.Namespace, out: Output) -> int:
    raise UsageError("pgshift fleet: name an action: plan, up or status")


def _targets(args: argparse.Namespace) -> tuple[TargetSpec, ...]:
    return pgshift.load_targets(
        args.targets, query=args.targets_query, control_url=args.control_url, shard=args.shard
    )


# -- plan ----------------------------------------------------------------------------------------


def cmd_fleet_plan(args: argparse.Namespace, out: Output) -> int:
    project = pgshift.load_project(settings_from(args))
    result = pgshift.fleet_plan(project, _targets(args), concurrency=args.concurrency)
    if out.json_mode:
        out.json(_result_json(result))
        return result.exit_code
    _show_plan(out, result)
    return result.exit_code


def _show_plan(out: Output, result: FleetResult) -> None:
    """The fleet plan as `fleet plan` prints it (and `fleet up` before it asks)."""
    rows = [
        [o.target, o.status, str(len(o.versions)), ", ".join(o.versions[:3]) + _more(o.versions)]
        for o in result.outcomes
    ]
    out.table(["target", "plan", "pending", "versions"], rows, title="fleet plan")
    pending = result.count("pending")
    out.line(
        f"{len(result.outcomes)} target(s): {pending} with pending migrations,"
        f" {result.count('up-to-date')} up to date, {result.count('failed')} failed"
    )
    _failures(out, result)


def _more(versions: tuple[str, ...]) -> str:
    return f" (+{len(versions) - 3})" if len(versions) > 3 else ""


def _failures(out: Output, result: FleetResult) -> None:
    for o in result.outcomes:
        if o.status == "failed" and o.message:
            out.line(f"[{o.target}] exit {o.exit_code}: {o.message}")


def _result_json(result: FleetResult) -> dict[str, Any]:
    return {
        "targets": [asdict(o) for o in result.outcomes],
        "summary": {
            status: result.count(status)
            for status in ("applied", "up-to-date", "pending", "failed", "not-started")
        },
        "applied": result.applied,
        "exit_code": result.exit_code,
    }


# -- up ------------------------------------------------------------------------------------------


class FleetRenderer:
    """Fleet events as lines: each target's end and the done / failed / remaining count; every
    step too with -v. Called from the pool's threads (the fleet serializes them)."""

    def __init__(self, out: Output) -> None:
        self.out = out
        self._lock = threading.Lock()

    def __call__(self, event: ev.FleetEvent) -> None:
        with self._lock:
            self._render(event)

    def _render(self, event: ev.FleetEvent) -> None:
        out = self.out
        if isinstance(event, ev.WaveStarted):
            out.line(f"{event.wave} wave: {event.targets} target(s)")
        elif isinstance(event, ev.TargetFinished):
            text = f"[{event.target}] {event.status}"
            if event.applied:
                text += f": {event.applied} migration(s)"
            if event.message and event.status != "applied":
                first, *rest = event.message.splitlines()
                # The rest says why (a pre-flight's offending rows, a hint): kept, indented.
                text += f" (exit {event.exit_code}): {first}"
                text += "".join(f"\n    {line}" for line in rest if line.strip())
            out.line(text)
        elif isinstance(event, ev.FleetProgress):
            out.line(f"  done {event.done}, failed {event.failed}, remaining {event.remaining}")
        elif isinstance(event, ev.TargetEvent) and out.verbose:
            inner = event.event
            if isinstance(inner, ev.StepApplied):
                out.line(f"  [{event.target}] applied {inner.name} ({inner.duration_ms} ms)")
            elif isinstance(inner, ev.StepFailed):
                out.line(f"  [{event.target}] FAILED {inner.name}: {inner.message}")


def _confirmed(out: Output, plan: FleetResult, *, yes: bool, backup: bool) -> bool:
    """Show the fleet's plan and ask on a terminal; without one, refuse unless --yes (as `up`)."""
    _show_plan(out, plan)
    pending = plan.count("pending")
    if not pending:
        return True  # nothing to apply: the run only confirms that, target by target
    if backup:
        out.line("a backup of each target's database is taken first (--skip-backup to skip)")
    return out.confirm(
        f"Apply to {pending} target(s)?",
        yes=yes,
        refusal=f"refusing to apply migrations to {pending} target(s)",
        hint="pass --yes to apply without asking",
    )


def cmd_fleet_up(args: argparse.Namespace, out: Output) -> int:
    settings = settings_from(args)
    project = pgshift.load_project(settings)
    targets = _targets(args)
    # With --yes nobody reads the plan before the run: it comes from the one read of every
    # history, and each target is planned on its own session only by its run.
    plan = pgshift.fleet_plan(
        project, targets, concurrency=args.concurrency, on_targets=not args.yes
    )
    backup = not args.skip_backup and settings.backup_enabled
    if not _confirmed(out, plan, yes=args.yes, backup=backup):
        raise UsageError("cancelled: nothing was applied")
    result = pgshift.fleet_up(
        project,
        targets,
        concurrency=args.concurrency,
        canary=args.canary,
        max_failures=args.max_failures,
        backup=not args.skip_backup,
        on_event=FleetRenderer(out),
        control_url=args.control_url,
        run=args.run,
        lease_s=args.lease,
        plan=plan,  # when it found nothing to apply, its read is the run's: one read, not two
    )
    if out.json_mode:
        out.json(_result_json(result))
        return result.exit_code
    out.line(
        f"fleet up: {result.count('applied')} target(s) migrated ({result.applied} migration(s)),"
        f" {result.count('up-to-date')} up to date, {result.count('failed')} failed,"
        f" {result.count('not-started')} not started"
    )
    return result.exit_code


# -- status --------------------------------------------------------------------------------------


def cmd_fleet_status(args: argparse.Namespace, out: Output) -> int:
    project = pgshift.load_project(settings_from(args))
    status = pgshift.fleet_status(project, _targets(args), concurrency=args.concurrency)
    run: FleetResult | None = None
    if args.control_url:
        run = pgshift.fleet_run(args.control_url, args.run or pgshift.fleet_run_name(project))
    if out.json_mode:
        data: dict[str, Any] = _status_json(status)
        if run is not None:
            data["run"] = _result_json(run)
        out.json(data)
        return status.exit_code
    rows = [
        [
            r.target,
            r.state,
            r.head or "-",
            str(r.pending),
            str(r.failed),
            str(r.drifted),
            str(r.expanded),
            r.last_run or "-",
        ]
        for r in status.rows
    ]
    out.table(
        ["target", "state", "head", "pending", "failed", "drifted", "expanded", "last run"],
        rows,
        title="fleet status",
    )
    for r in status.rows:
        if r.error:
            out.line(f"[{r.target}] exit {r.exit_code}: {r.error}")
    out.line(_summary(status))
    if run is not None:
        out.line(
            f"run: {run.count('applied') + run.count('up-to-date')} done,"
            f" {run.count('failed')} failed, {run.count('not-started')} pending or running"
        )
    return status.exit_code


_STATES = ("up-to-date", "pending", "failed", "drifted", "unreachable", "error")


def _summary(status: FleetStatus) -> str:
    parts = [f"{status.count(s)} {s}" for s in _STATES if status.count(s)]
    return f"{len(status.rows)} target(s): " + (", ".join(parts) or "none")


def _status_json(status: FleetStatus) -> dict[str, Any]:
    return {
        "targets": [{**asdict(r), "state": r.state} for r in status.rows],
        "summary": {s: status.count(s) for s in _STATES},
        "exit_code": status.exit_code,
    }
