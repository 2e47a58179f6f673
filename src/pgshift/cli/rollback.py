"""The `rollback ...` verbs and `backup`: flags in, library call, report out.

They are reached for when something already went wrong, so each one says before it acts what it
will do, asks on a terminal (`--yes` skips it, no terminal and no `--yes` refuses), and after a
failure says where the database was left. Like `up`, each plans first (a value), shows the plan,
confirms, then hands exactly that plan to the library; `--json` prints one document, with the
error inside it when there is one.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pgshift
from pgshift.cli.commands import apply_and_report, failure_json, run_json
from pgshift.cli.flags import settings_from
from pgshift.cli.render import Output, RunRenderer, size_text
from pgshift.errors import PgshiftError, UsageError

if TYPE_CHECKING:
    from pgshift.db.target import Target
    from pgshift.ops.manifest import Manifest
    from pgshift.ops.rollback import DryRunReport, EmergencyPlan, EmergencyResult, RestorePlan
    from pgshift.plan import Plan, RollbackCheck


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add `backup` and `rollback safe|to-version|dry-run|emergency|list-backups|restore`."""
    p = sub.add_parser("backup", parents=[common], help="take a backup of the database now")
    p.add_argument("--json", action="store_true", help="print the backup's manifest as JSON")
    p.set_defaults(handler=cmd_backup)

    rollback = sub.add_parser("rollback", parents=[common], help="revert, recover, restore")
    rollback.set_defaults(handler=_missing_action)
    actions = rollback.add_subparsers(
        dest="rollback_command", metavar="ACTION", parser_class=type(rollback)
    )

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = actions.add_parser(name, parents=[common], help=help_text)
        parser.add_argument("--json", action="store_true", help="print the result as JSON")
        return parser

    def writes(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
        parser.add_argument("--skip-backup", action="store_true", help="take no backup first")

    p = action("safe", "revert the last N applied migrations with their rollback files")
    p.add_argument("--count", type=int, default=1, metavar="N", help="how many (default 1)")
    writes(p)
    p.set_defaults(handler=cmd_safe)

    p = action("to-version", "revert every applied migration newer than VERSION")
    p.add_argument("version", help="stays applied; 0 reverts everything")
    writes(p)
    p.set_defaults(handler=cmd_to_version)

    p = action("dry-run", "show what a rollback would do; changes nothing")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--count", type=int, metavar="N", help="the last N (default 1)")
    which.add_argument("--to-version", metavar="VERSION", help="everything newer than VERSION")
    p.add_argument(
        "--simulate",
        action="store_true",
        help="run it on a scratch copy of the target's schema (embedded server by default)",
    )
    p.add_argument(
        "--scratch-url",
        metavar="URL",
        help="with --simulate: a server where a scratch database may be created and dropped",
    )
    p.set_defaults(handler=cmd_dry_run)

    p = action("emergency", "return to the state before the most recent `up` run")
    writes(p)
    p.set_defaults(handler=cmd_emergency)

    p = action("list-backups", "the backups in DB_BACKUP_DIR")
    p.set_defaults(handler=cmd_list_backups)

    p = action("restore", "verify a backup's checksum and restore it")
    p.add_argument("backup_id", metavar="BACKUP_ID")
    writes(p)
    p.set_defaults(handler=cmd_restore)


def _missing_action(args: argparse.Namespace, out: Output) -> int:
    raise UsageError(
        "pgshift rollback: say safe, to-version, dry-run, emergency, list-backups or restore",
        hint="see `pgshift rollback --help`",
    )


# -- shared helpers ------------------------------------------------------------------------------


def _confirm(out: Output, yes: bool, question: str, refusal: str) -> bool:
    return out.confirm(question, yes=yes, refusal=refusal)


def _manifest_json(m: Manifest) -> dict[str, Any]:
    return {
        "id": m.id,
        "created_at": m.created_at,
        "reason": m.reason,
        "database": m.database,
        "size_bytes": m.size_bytes,
        "sha256": m.sha256,
        "versions": list(m.versions),
        "run_id": m.run_id,
        "server_version": m.server_version,
        "pg_dump_version": m.pg_dump_version,
    }


def _show_checks(out: Output, checks: Sequence[RollbackCheck]) -> None:
    for check in checks:
        out.line(f"  [{check.status:<7}] {check.name}: {check.detail}")


# -- backup, list-backups, restore ---------------------------------------------------------------


def cmd_backup(args: argparse.Namespace, out: Output) -> int:
    renderer = RunRenderer(out)  # renders the backup's progress and the "backup taken" line
    manifest = pgshift.backup(settings_from(args), on_event=renderer)
    renderer.backup.done()
    if args.json:
        out.json(_manifest_json(manifest))
    return 0


def cmd_list_backups(args: argparse.Namespace, out: Output) -> int:
    backups = list(reversed(pgshift.list_backups(settings_from(args))))
    if args.json:
        out.json({"backups": [_manifest_json(m) for m in backups]})
        return 0
    if not backups:
        out.line("no backups yet")
        return 0
    out.table(
        ["id", "taken at", "reason", "database", "size", "versions applied", "sha256"],
        [
            [
                m.id,
                m.created.strftime("%Y-%m-%d %H:%M:%S UTC"),
                m.reason,
                m.database,
                size_text(m.size_bytes),
                (m.versions[-1] + f" ({len(m.versions)})") if m.versions else "none",
                m.sha256[:12],
            ]
            for m in backups
        ],
        title=f"{len(backups)} backup(s), newest first",
    )
    return 0


def _show_restore(out: Output, plan: RestorePlan) -> None:
    manifest = plan.manifest
    out.line(
        f"backup {manifest.id}: taken {manifest.created_at} ({manifest.reason}),"
        f" checksum verified, {len(manifest.versions)} migration(s) applied then"
    )
    out.line(f"restoring it replaces everything in database {plan.database!r}:")
    out.line("  rows written since the backup will be lost (a safety backup is taken first)")
    for obj in plan.dropped:
        out.line(f"  drops {obj.kind} {obj.identity} (created after the backup)")


def cmd_restore(args: argparse.Namespace, out: Output) -> int:
    settings = settings_from(args)
    with pgshift.connect(settings, purpose="restore") as target:
        plan = pgshift.plan_restore(target, args.backup_id)
        _show_restore(out, plan)
        question = f"Restore {plan.manifest.id} into {plan.database}?"
        if not _confirm(out, args.yes, question, "refusing to restore"):
            raise UsageError("cancelled: nothing was restored")
        renderer = RunRenderer(out)
        try:
            result = pgshift.restore(plan, target, on_event=renderer, backup=not args.skip_backup)
        finally:
            renderer.backup.done()
    if args.json:
        out.json(
            {
                "run_id": None,
                "steps": [],
                "backup_id": result.backup_id,
                "restored": result.manifest.id,
                "dropped": [f"{o.kind} {o.identity}" for o in result.dropped],
                "duration_ms": result.duration_ms,
            }
        )
    else:
        out.line(
            f"restored backup {result.manifest.id}: {len(result.manifest.versions)} migration(s)"
            f" applied, as when it was taken (verified)"
        )
        if result.backup_id:
            # Its manifest reason stays SPEC's `before-rollback` (SPEC 2 lists the reasons);
            # say here what it was taken before, and how to go back to it.
            out.line(
                f"the state before this restore is safety backup {result.backup_id}:"
                f" `pgshift rollback restore {result.backup_id}` undoes this restore"
            )
    return 0


# -- safe, to-version ----------------------------------------------------------------------------


def _show_rollback(out: Output, plan: Plan, *, backup_wanted: bool) -> None:
    out.line(f"Rollback plan: {len(plan.steps)} migration(s), newest first")
    for step in plan.steps:
        note = f" (resuming after {step.resume.statements_done})" if step.resume else ""
        out.line(f"  revert {step.migration.name}{note}")
    _show_checks(out, plan.checks)
    if backup_wanted:
        out.line("a backup is taken before reverting (--skip-backup to skip)")


def _stopped_line(out: Output, exc: PgshiftError) -> None:
    """After a failed rollback: what was reverted, and that the rest is still applied."""
    partial = exc.result
    if partial is None or not partial.steps:
        return
    done = [s.version for s in partial.steps if s.status == "reverted"]
    out.line(
        f"stopped: reverted {', '.join(done) or 'nothing'}; the rest is still applied"
        " (`pgshift status` shows them)"
    )


def _run(args: argparse.Namespace, out: Output, *, count: int | None, to: str | None) -> int:
    settings = settings_from(args)
    project = pgshift.load_project(settings, allow_problems=True)
    with pgshift.connect(settings, purpose="rollback") as target:
        plan = pgshift.plan_rollback(project, target, count=count, to_version=to)
        if not plan.steps:
            if args.json:
                out.json(run_json(None))
            else:
                out.line("Nothing to revert.")
            return 0
        backup = not args.skip_backup
        _show_rollback(out, plan, backup_wanted=backup and settings.backup_enabled)
        n = len(plan.steps)
        if not _confirm(out, args.yes, f"Revert {n} migration(s)?", f"refusing to revert {n}"):
            raise UsageError("cancelled: nothing was reverted")
        try:
            return apply_and_report(
                out, plan, target, backup=backup, as_json=args.json, execute=pgshift.rollback
            )
        except PgshiftError as exc:
            _stopped_line(out, exc)
            raise


def cmd_safe(args: argparse.Namespace, out: Output) -> int:
    return _run(args, out, count=args.count, to=None)


def cmd_to_version(args: argparse.Namespace, out: Output) -> int:
    return _run(args, out, count=None, to=args.version)


# -- dry-run -------------------------------------------------------------------------------------


def _dry_run_json(report: DryRunReport) -> dict[str, Any]:
    simulation = report.simulation
    return {
        "dry_run": True,
        "versions": list(report.versions),
        "checks": [{"name": c.name, "status": c.status, "detail": c.detail} for c in report.checks],
        "steps": [
            {
                "version": s.version,
                "action": "revert",
                "status": "planned",
                "duration_ms": None,
                "file": s.path,
                "resume_after": s.resume_after,
                "statements": [
                    {
                        "line": st.line,
                        "sql": st.sql,
                        "transactional": st.transactional,
                        "locks": list(st.locks),
                    }
                    for st in s.statements
                ],
            }
            for s in report.steps
        ],
        "simulation": None
        if simulation is None
        else {
            "where": simulation.where,
            "ok": simulation.ok,
            "error": simulation.error,
            "steps": [
                {
                    "version": s.version,
                    "action": "revert",
                    "status": s.status,
                    "duration_ms": s.duration_ms,
                    "message": s.message,
                }
                for s in simulation.steps
            ],
        },
    }


def _show_dry_run(out: Output, report: DryRunReport) -> None:
    out.line(f"Would revert {len(report.versions)} migration(s), in this order:")
    for i, version in enumerate(report.versions, 1):
        out.line(f"  {i}. {version}")
    out.line("Checks:")
    _show_checks(out, report.checks)
    for step in report.steps:
        resume = f" (resumes after statement {step.resume_after})" if step.resume_after else ""
        out.line(f"\n-- {step.path}{resume}")
        for st in step.statements:
            where = "" if st.transactional else "  -- outside a transaction"
            out.line(f"-- line {st.line}{where}; locks: {'; '.join(st.locks)}\n{st.sql};")
    if report.simulation is not None:
        sim = report.simulation
        out.line(f"\nSimulation on a scratch copy of the schema ({sim.where}):")
        for s in sim.steps:
            took = f" ({s.duration_ms} ms)" if s.duration_ms is not None else ""
            out.line(f"  {s.status:<9}{s.version}{took}{': ' + s.message if s.message else ''}")
        out.line("  result: " + ("the rollback works" if sim.ok else f"FAILED: {sim.error}"))
    out.line("\ndry run: nothing was changed on the target")


def cmd_dry_run(args: argparse.Namespace, out: Output) -> int:
    if args.scratch_url and not args.simulate:
        raise UsageError("--scratch-url only makes sense with --simulate")
    settings = settings_from(args)
    project = pgshift.load_project(settings, allow_problems=True)
    from pgshift.cli.progress import showing_work

    with pgshift.connect(settings, purpose="rollback") as target, showing_work(out) as shown:
        report = pgshift.preview_rollback(
            project,
            target,
            count=args.count,
            to_version=args.to_version,
            simulate=args.simulate,
            scratch_url=args.scratch_url,
            on_event=shown,
        )
    failed_check = any(c.status == "error" for c in report.checks)
    failed_simulation = report.simulation is not None and not report.simulation.ok
    code = 2 if failed_check else (1 if failed_simulation else 0)
    if args.json:
        out.json(_dry_run_json(report))
        return code
    if not report.versions:
        out.line("Nothing to revert.")
        return 0
    _show_dry_run(out, report)
    return code


# -- emergency -----------------------------------------------------------------------------------


def _show_emergency(out: Output, ep: EmergencyPlan) -> None:
    out.line(f"Emergency: back to the state before run {ep.run_id}")
    for version in ep.versions:
        finishing = " (finishing its half-done revert)" if version in ep.finishing else ""
        out.line(f"  revert {version}{finishing}")
    _show_checks(out, ep.checks)
    if ep.blockers:
        assert ep.backup is not None  # a plan with blockers and no backup is refused unasked
        out.line(
            f"the rollback files cannot be used: restoring backup {ep.backup.id}"
            f" (taken {ep.backup.created_at}); rows written since then will be lost"
        )
    elif ep.backup is not None:
        out.line(
            f"if a rollback fails, backup {ep.backup.id} (before that run) is restored;"
            f" rows written since {ep.backup.created_at} would be lost"
        )
    else:
        out.line("no backup was taken before that run: a failing rollback stops there")


def _emergency_json(result: EmergencyResult) -> dict[str, Any]:
    safety = result.safety_backup
    return {
        **run_json(result.result),
        "backup_id": safety.id if safety else None,
        "target_run_id": result.plan.run_id,
        "mode": result.mode,
        "restored": result.restored.manifest.id if result.restored else None,
        "failure": result.failure,
        "verified": True,
        "schema_verified": result.mode == "restored" or result.plan.backup_is_the_goal,
    }


def _emergency_text(out: Output, result: EmergencyResult) -> None:
    run_id = result.plan.run_id
    if result.mode == "nothing":
        out.line("The database is already at the state before the last run (verified).")
    elif result.mode == "restored":
        restored = result.restored.manifest.id if result.restored else None
        out.line(f"restored backup {restored}: back at the state before run {run_id}")
    else:
        out.line(f"back at the state before run {run_id} (verified)")


def _emergency_run(args: argparse.Namespace, out: Output, ep: EmergencyPlan, target: Target) -> int:
    """Carry out the confirmed plan; the one confirmation covered the fallback to the backup."""
    renderer = RunRenderer(out)
    try:
        result = pgshift.rollback_emergency(
            ep, target, on_event=renderer, backup=not args.skip_backup, restore_confirmed=True
        )
    except PgshiftError as exc:
        renderer.close()
        renderer.backup.done()
        if not args.json:
            raise
        return failure_json(out, exc, target_run_id=ep.run_id, verified=False)
    renderer.close()
    renderer.backup.done()
    if result.failure is not None:
        out.line(f"the rollback files were not enough: {result.failure}")
    if args.json:
        out.json(_emergency_json(result))
    else:
        _emergency_text(out, result)
    return 0


def cmd_emergency(args: argparse.Namespace, out: Output) -> int:
    settings = settings_from(args)
    project = pgshift.load_project(settings, allow_problems=True)
    with pgshift.connect(settings, purpose="rollback") as target:
        ep = pgshift.plan_emergency(project, target)
        if ep.versions and not ep.stuck:
            _show_emergency(out, ep)
            if not _confirm(out, args.yes, "Go ahead?", "refusing the emergency rollback"):
                raise UsageError("cancelled: nothing was changed")
        return _emergency_run(args, out, ep, target)
