"""The adoption verbs, `baseline` and `import`: flags in, library call, report out.

`baseline` plans first (the proof on a scratch database), shows what it would record and any
difference, refuses a mismatch (exit 4) unless --force, confirms like `up`, then records exactly
that plan. `import` writes files and carries the old tool's history over, refusing before it
writes anything when that history is dirty, failed or names a file the source lacks.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

import pgshift
from pgshift.cli.flags import settings_from
from pgshift.cli.render import Output
from pgshift.errors import UsageError

if TYPE_CHECKING:
    from pgshift.db.target import Target
    from pgshift.ops.baseline import BaselinePlan, BaselineResult
    from pgshift.ops.importing import ImportPlan, ImportResult

TOOLS = ("diesel", "golang-migrate", "dbmate", "flyway", "popx")


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add `baseline V` and `import --from TOOL SRC`."""
    p = sub.add_parser(
        "baseline",
        parents=[common],
        help="record the migrations up to V as applied, after proving the schema matches",
    )
    p.add_argument("version", metavar="VERSION", help="the newest migration the database has")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    p.add_argument(
        "--force", action="store_true", help="record even when the schemas differ (logged)"
    )
    p.add_argument(
        "--scratch-url",
        metavar="URL",
        help="a server where a scratch database may be created and dropped (else the embedded)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=cmd_baseline)

    p = sub.add_parser(
        "import", parents=[common], help="convert another tool's migrations into pgshift files"
    )
    p.add_argument("--from", dest="tool", required=True, choices=TOOLS, help="the old tool")
    p.add_argument("source", metavar="SRC", help="the folder of the old tool's migrations")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=cmd_import)


def _warn(text: str) -> None:
    print(f"warning: {text}", file=sys.stderr, flush=True)


# -- baseline ------------------------------------------------------------------------------------


def _show_baseline(out: Output, plan: BaselinePlan) -> None:
    rows = [[m.version, m.description] for m in plan.migrations]
    out.table(
        ["version", "description"],
        rows,
        title=f"Baseline up to {plan.version}: {len(rows)} migration(s) to record as applied"
        " (not run)",
    )
    if plan.already:
        out.line(f"already applied, left as they are: {', '.join(plan.already)}")
    if plan.matches:
        out.line(
            "the database's schema matches what these migrations build on a"
            f" {plan.proven_on or 'scratch database'}"
        )


def _confirm(out: Output, plan: BaselinePlan, *, yes: bool) -> None:
    count = len(plan.migrations)
    if not out.confirm(
        f"Record {count} migration(s) as applied?",
        yes=yes,
        refusal=f"refusing to record {count} migration(s) as applied",
        hint="pass --yes to record them without asking",
    ):
        raise UsageError("cancelled: nothing was recorded")


def _baseline_json(plan: BaselinePlan, result: BaselineResult | None) -> dict[str, Any]:
    return {
        "baseline": plan.version,
        "run_id": result.run_id if result else None,
        "versions": list(result.versions if result else ()),
        "already": list(plan.already),
        "matches": plan.matches,
        "forced": bool(result and result.forced),
        "differences": list(result.differences if result else plan.differences),
        "lint_since": _lint_since_json(result.lint_since if result else None),
        "proven_on": plan.proven_on,
    }


def cmd_baseline(args: argparse.Namespace, out: Output) -> int:
    settings = settings_from(args)
    project = pgshift.load_project(settings)
    with pgshift.connect(settings, purpose="baseline") as target:
        from pgshift.cli.progress import showing_work

        with showing_work(out) as shown:
            plan = pgshift.plan_baseline(
                project, target, args.version, scratch_url=args.scratch_url, on_event=shown
            )
        if not plan.migrations:
            if args.json:
                out.json(_baseline_json(plan, None))
            else:
                out.line(f"Nothing to record: every migration up to {args.version} is applied.")
            return 0
        _show_baseline(out, plan)
        if not plan.matches:
            if not args.force:
                from pgshift.ops.baseline import mismatch

                raise mismatch(plan.version, plan.differences, plan.proven_on)
            for line in plan.differences:
                _warn(f"schema difference: {line}")
        _confirm(out, plan, yes=args.yes)
        result = pgshift.baseline(plan, target, force=args.force)
    if result.forced:
        _warn(
            f"--force: recorded {len(result.versions)} migration(s) despite"
            f" {len(result.differences)} schema difference(s); each `baseline` event in"
            f" {settings.schema}.log says it was forced and lists them"
        )
    if args.json:
        out.json(_baseline_json(plan, result))
    else:
        out.line(
            f"recorded {len(result.versions)} migration(s) as applied (baseline up to"
            f" {plan.version}, run {result.run_id}); `pgshift up` applies what comes after"
        )
        _lint_since_line(out, result.lint_since, plan.version)
    return 0


# -- import --------------------------------------------------------------------------------------


def _show_import(out: Output, plan: ImportPlan) -> None:
    rows = [
        [
            f.version,
            f.source.id,
            f.description,
            "no" if not f.source.transaction else "yes",
            "irreversible" if f.irreversible else "yes",
            "applied" if f.version in plan.carried else "pending",
        ]
        for f in plan.files
    ]
    out.table(
        ["version", f"{plan.tool} id", "description", "transaction", "rollback", "state"],
        rows,
        title=f"Import from {plan.tool}: {len(rows)} migration(s), versions by {plan.scheme}",
    )
    for note in plan.skipped:
        _warn(f"left out: {note}")
    for path in plan.kept:
        _warn(
            f"left as it is: {path} (edited since an earlier import; delete it to import it again)"
        )


def _import_json(plan: ImportPlan, result: ImportResult) -> dict[str, Any]:
    files = [
        {
            "version": f.version,
            "id": f.source.id,
            "migration": f.migration_name,
            "rollback": f.rollback_name,
            "transaction": f.source.transaction,
            "irreversible": f.irreversible,
        }
        for f in plan.files
    ]
    return {
        "tool": plan.tool,
        "directory": str(plan.directory),
        "scheme": plan.scheme,
        "files": files,
        "skipped": list(plan.skipped),
        "written": [str(p) for p in result.written],
        "history_table": plan.history_table,
        "recorded": list(result.recorded),
        "pending": list(plan.pending),
        "updated": [str(p) for p in plan.updated if p in result.written],
        "kept": [str(p) for p in result.kept],
        "lint_since": _lint_since_json(result.lint_since),
    }


def _lint_since_json(since: pgshift.LintSince | None) -> dict[str, Any] | None:
    if since is None:
        return None
    return {
        "version": since.version,
        "file": str(since.file) if since.file else None,
        "problem": since.problem,
    }


def _lint_since_line(out: Output, since: pgshift.LintSince | None, version: str) -> None:
    """Say where `lint_since` went, or how to set it by hand when it could not be written."""
    if since is None:
        return
    if since.problem is not None:
        _warn(
            f'lint_since not set ({since.problem}): add lint_since = "{version}" to'
            " [tool.pgshift] by hand, or `pgshift validate` lints the history as new"
        )
    elif since.file is not None:
        out.line(
            f"lint_since = {since.version} in {since.file}: `pgshift validate` treats findings in"
            " the migrations up to it as history"
        )


def _import_target(settings: pgshift.Settings) -> Target | None:
    """The configured database, if any: an import never starts the embedded server."""
    if pgshift.database_url(settings, start_embedded=False) is None:
        return None
    return pgshift.connect(settings, purpose="import")


def cmd_import(args: argparse.Namespace, out: Output) -> int:
    settings = settings_from(args)
    target = _import_target(settings)
    try:
        plan = pgshift.plan_import(settings, args.tool, args.source, target=target)
        _show_import(out, plan)
        result = pgshift.import_migrations(plan, target=target)
    finally:
        if target is not None:
            target.close()
    if args.json:
        out.json(_import_json(plan, result))
        return 0
    updated = sum(1 for p in plan.updated if p in result.written)
    again = f" ({updated} updated: unedited files of an earlier import)" if updated else ""
    out.line(f"wrote {len(result.written)} file(s) into {plan.directory}{again}")
    _lint_since_line(out, result.lint_since, plan.last_version)
    if target is None:
        out.line("no database configured: no history carried over")
    elif plan.history_table is None:
        out.line(f"the database has no {args.tool} history table: nothing carried over")
    else:
        out.line(
            f"recorded {len(result.recorded)} migration(s) that {plan.tool}'s"
            f" {plan.history_table} marks applied; `pgshift up` applies the other"
            f" {len(plan.pending)}"
        )
    return 0
