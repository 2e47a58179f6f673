"""The `rollback ...` verbs and `backup`: flags in, library call, report out.

They are reached for when something already went wrong, so each one says before it acts what it
will do, asks on a terminal (`--yes` skips it, no terminal and no `--yes` refuses), and after a
failure says where the database was left.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

import pgshift
from pgshift.cli.commands import settings_from
from pgshift.cli.render import BackupRenderer, Output, RunRenderer, size_text
from pgshift.errors import PgshiftError, UsageError

if TYPE_CHECKING:
    from pgshift.model import SchemaObject
    from pgshift.ops.manifest import Manifest
    from pgshift.ops.rollback import DryRunReport, EmergencyPlan, Prepared


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
    if yes:
        return True
    if not sys.stdin.isatty():
        raise UsageError(
            f"{refusal} without confirmation: there is no terminal to ask on",
            hint="pass --yes to go ahead without asking",
        )
    return out.ask(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def backup_line(out: Output, manifest: Manifest) -> None:
    out.line(
        f"backup {manifest.id} taken ({manifest.reason}): {size_text(manifest.size_bytes)},"
        f" sha256 {manifest.sha256[:16]}..., {len(manifest.versions)} migration(s) applied"
    )


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


def _show_checks(out: Output, checks: Any) -> None:
    for check in checks:
        out.line(f"  [{check.status:<7}] {check.name}: {check.detail}")


# -- backup, list-backups, restore ---------------------------------------------------------------


def cmd_backup(args: argparse.Namespace, out: Output) -> int:
    progress = BackupRenderer(out)
    manifest = pgshift.backup(settings_from(args), progress=progress)
    progress.done()
    if args.json:
        out.json(_manifest_json(manifest))
    else:
        backup_line(out, manifest)
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


def cmd_restore(args: argparse.Namespace, out: Output) -> int:
    progress = BackupRenderer(out)
    taken: list[Manifest] = []

    def confirm(manifest: Manifest, extras: tuple[SchemaObject, ...], database: str) -> bool:
        out.line(
            f"backup {manifest.id}: taken {manifest.created_at} ({manifest.reason}),"
            f" checksum verified, {len(manifest.versions)} migration(s) applied then"
        )
        out.line(f"restoring it replaces everything in database {database!r}:")
        out.line("  rows written since the backup will be lost (a safety backup is taken first)")
        for obj in extras:
            out.line(f"  drops {obj.kind} {obj.identity} (created after the backup)")
        return _confirm(
            out, args.yes, f"Restore {manifest.id} into {database}?", "refusing to restore"
        )

    def backed_up(manifest: Manifest) -> None:
        progress.done()
        taken.append(manifest)
        backup_line(out, manifest)

    result = pgshift.restore(
        settings_from(args),
        args.backup_id,
        skip_backup=args.skip_backup,
        confirm=confirm,
        progress=progress,
        on_backup=backed_up,
    )
    progress.done()
    if args.json:
        out.json(
            {
                "run_id": None,
                "steps": [],
                "backup_id": taken[0].id if taken else None,
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
    return 0


# -- safe, to-version ----------------------------------------------------------------------------


def _run(args: argparse.Namespace, out: Output, *, count: int | None, to: str | None) -> int:
    renderer = RunRenderer(out)
    progress = BackupRenderer(out)
    taken: list[Manifest] = []

    def confirm(prepared: Prepared) -> bool:
        out.line(f"Rollback plan: {len(prepared.plan.steps)} migration(s), newest first")
        for step in prepared.plan.steps:
            note = f" (resuming after {step.resume.statements_done})" if step.resume else ""
            out.line(f"  revert {step.migration.name}{note}")
        _show_checks(out, prepared.checks)
        n = len(prepared.plan.steps)
        return _confirm(out, args.yes, f"Revert {n} migration(s)?", f"refusing to revert {n}")

    def backed_up(manifest: Manifest) -> None:
        progress.done()
        taken.append(manifest)
        backup_line(out, manifest)

    try:
        outcome = pgshift.rollback(
            settings_from(args),
            count=count,
            to_version=to,
            skip_backup=args.skip_backup,
            confirm=confirm,
            emit=renderer,
            progress=progress,
            on_backup=backed_up,
        )
    except PgshiftError:
        renderer.close()
        progress.done()
        done = [s["version"] for s in renderer.steps if s["status"] == "reverted"]
        if renderer.steps:
            out.line(
                f"stopped: reverted {', '.join(done) or 'nothing'}; the rest is still applied"
                " (`pgshift status` shows them)"
            )
        if args.json and renderer.steps:
            backup_id = taken[0].id if taken else None
            out.json({"run_id": renderer.run_id, "steps": renderer.steps, "backup_id": backup_id})
        raise
    renderer.close()
    backup_id = taken[0].id if taken else None
    if outcome.result is None:
        if args.json:
            out.json({"run_id": None, "steps": [], "backup_id": None})
        else:
            out.line("Nothing to revert.")
        return 0
    if args.json:
        out.json({"run_id": outcome.result.run_id, "steps": renderer.steps, "backup_id": backup_id})
    return 0


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


def cmd_dry_run(args: argparse.Namespace, out: Output) -> int:
    if args.scratch_url and not args.simulate:
        raise UsageError("--scratch-url only makes sense with --simulate")
    report = pgshift.plan_rollback(
        settings_from(args),
        count=args.count,
        to_version=args.to_version,
        simulate=args.simulate,
        scratch_url=args.scratch_url,
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
    return code


# -- emergency -----------------------------------------------------------------------------------


def cmd_emergency(args: argparse.Namespace, out: Output) -> int:  # noqa: C901
    renderer = RunRenderer(out)
    progress = BackupRenderer(out)
    taken: list[Manifest] = []

    def confirm(ep: EmergencyPlan) -> bool:
        out.line(f"Emergency: back to the state before run {ep.run_id}")
        for version in ep.versions:
            out.line(f"  revert {version}")
        _show_checks(out, ep.checks)
        if ep.blockers:
            assert ep.backup is not None
            out.line(
                f"the rollback files cannot be used: restoring backup {ep.backup.id}"
                f" (taken {ep.backup.created_at}); rows written since then will be lost"
            )
        elif ep.backup is not None:
            out.line(f"if a rollback fails, backup {ep.backup.id} (before that run) is restored")
        else:
            out.line("no backup was taken before that run: a failing rollback stops there")
        return _confirm(out, args.yes, "Go ahead?", "refusing the emergency rollback")

    def confirm_restore(manifest: Manifest, why: str) -> bool:
        renderer.close()
        out.line(f"the rollback files were not enough: {why}")
        return _confirm(
            out,
            args.yes,
            f"Restore backup {manifest.id}? Rows written since {manifest.created_at} are lost.",
            "refusing to restore the backup",
        )

    def backed_up(manifest: Manifest) -> None:
        progress.done()
        taken.append(manifest)
        backup_line(out, manifest)

    try:
        result = pgshift.rollback_emergency(
            settings_from(args),
            skip_backup=args.skip_backup,
            confirm=confirm,
            confirm_restore=confirm_restore,
            emit=renderer,
            progress=progress,
            on_backup=backed_up,
        )
    except PgshiftError:
        renderer.close()
        progress.done()
        if args.json and renderer.steps:
            backup_id = taken[0].id if taken else None
            out.json({"run_id": renderer.run_id, "steps": renderer.steps, "backup_id": backup_id})
        raise
    renderer.close()
    progress.done()
    restored = result.restored.manifest.id if result.restored else None
    if args.json:
        out.json(
            {
                "run_id": result.result.run_id if result.result else None,
                "steps": renderer.steps,
                "backup_id": taken[0].id if taken else None,
                "target_run_id": result.plan.run_id,
                "mode": result.mode,
                "restored": restored,
                "verified": True,
            }
        )
        return 0
    if result.mode == "nothing":
        out.line("The database is already at the state before the last run (verified).")
    elif result.mode == "restored":
        out.line(f"restored backup {restored}: back at the state before run {result.plan.run_id}")
    else:
        out.line(f"back at the state before run {result.plan.run_id} (verified)")
    return 0
