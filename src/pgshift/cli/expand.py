"""`pgshift contract`: the end of an expand-contract window, shown, confirmed and run."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

import pgshift
from pgshift.cli.commands import apply_and_report
from pgshift.cli.flags import settings_from
from pgshift.cli.render import Output
from pgshift.errors import UsageError
from pgshift.plan import Plan

if TYPE_CHECKING:
    from pgshift import ContractCheck, OldShapeUse


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add `contract`."""
    p = sub.add_parser(
        "contract",
        parents=[common],
        help="end the expand phase of expanded migrations: drop the old shape, keep the new",
        description="End the expand phase of expanded migrations (every one, or the VERSIONs"
        " named): drop what only the old shape needed, keep the new. With nothing expanded"
        " there is nothing to do (exit 0); a VERSION that is not expanded is exit 2.",
    )
    p.add_argument("versions", nargs="*", metavar="VERSION", help="which (default: every one)")
    p.add_argument("--dry-run", action="store_true", help="show what contract would run")
    p.add_argument(
        "--check",
        action="store_true",
        help="change nothing; report whether sessions still use the old shape (a renamed or"
        " dropped column, a renamed table's old name) in their current or last statement, and"
        " statements pg_stat_statements kept, when it is installed: exit 0 when none, 1 when"
        " some (each named: pid, application, user, the statement without its values)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    p.add_argument("--skip-backup", action="store_true", help="take no backup first")
    p.set_defaults(handler=cmd_contract)


def _plan_json(plan: Plan) -> dict[str, Any]:
    return {
        "dry_run": True,
        "steps": [
            {
                "version": s.migration.version,
                "action": "contract",
                "removes": list(s.expansion.removes) if s.expansion else [],
                "statements": [
                    {"line": st.line, "sql": st.sql, "transactional": st.transactional}
                    for st in s.script.statements
                ],
            }
            for s in plan.steps
        ],
    }


def _show(out: Output, plan: Plan) -> None:
    for step in plan.steps:
        out.line(f"Contract {step.migration.name}:")
        for removed in step.expansion.removes if step.expansion else ():
            out.line(f"  removes {removed}")
        for statement in step.script.statements:
            out.line(f"    {statement.sql}")


def cmd_contract(args: argparse.Namespace, out: Output) -> int:
    settings = settings_from(args)
    if args.check:
        if args.dry_run:
            raise UsageError("--check and --dry-run: choose one (--check changes nothing)")
        return _report_check(out, pgshift.check_contract(settings, tuple(args.versions)), args.json)
    project = pgshift.load_project(settings, allow_problems=True)
    with pgshift.connect(settings) as target:
        plan = pgshift.plan_contract(target, project, tuple(args.versions))
        if not plan.steps:
            if args.json:
                out.json(_plan_json(plan) if args.dry_run else {"run_id": None, "steps": []})
            else:
                out.line("Nothing to contract: no migration is expanded.")
            return 0
        if args.dry_run:
            if args.json:
                out.json(_plan_json(plan))
            else:
                _show(out, plan)
            return 0
        if not args.json:
            _show(out, plan)
        n = len(plan.steps)
        refusal = f"refusing to contract {n} migration(s)"
        if not out.confirm(f"Contract {n} migration(s)?", yes=args.yes, refusal=refusal):
            raise UsageError("cancelled: nothing was contracted")
        code = apply_and_report(out, plan, target, backup=not args.skip_backup, as_json=args.json)
        if code == 0 and not args.json:
            out.line(f"Contracted {n} migration(s).")
        return code


def _use_json(use: OldShapeUse) -> dict[str, Any]:
    return {
        "version": use.version,
        "names": list(use.names),
        "statement": use.statement,
        "user": use.user,
        "pid": use.pid,
        "application_name": use.application_name,
        "state": use.state,
        "calls": use.calls,
    }


def _report_check(out: Output, check: ContractCheck, as_json: bool) -> int:
    """`contract --check`: what is looked for, who still uses it, and what could not be seen."""
    if as_json:
        out.json(
            {
                "in_use": check.in_use,
                "exit_code": check.exit_code,
                "migrations": [{"version": v, "names": list(n)} for v, n in check.watched],
                "sessions": [_use_json(u) for u in check.sessions],
                "statements": [_use_json(u) for u in check.statements],
                "pg_stat_statements": check.statements_missing is None,
                "pg_stat_statements_missing": check.statements_missing,
                "pg_stat_statements_reset_at": check.statements_reset_at.isoformat()
                if check.statements_reset_at
                else None,
                "unreadable_sessions": check.unreadable,
            }
        )
        return check.exit_code
    if not check.watched:
        out.line("Nothing to check: no migration is expanded.")
        return 0
    for version, names in check.watched:
        looked = ", ".join(names) if names else "nothing: it only changes types, and the old and"
        looked += "" if names else " the new code name the same columns"
        out.line(f"{version}: looking for {looked}")
    for use in check.sessions:
        who = f"pid {use.pid} ({use.application_name or 'no application_name'}, user {use.user}"
        out.line(f"  {who}, {use.state}) uses {', '.join(use.names)}: {use.statement}")
    for use in check.statements:
        out.line(
            f"  pg_stat_statements: {use.calls} call(s) by {use.user} use {', '.join(use.names)}:"
            f" {use.statement}"
        )
    if check.statements_missing:
        out.line(f"Note: {check.statements_missing}.")
    elif check.statements:
        since = check.statements_reset_at
        out.line(
            "Note: pg_stat_statements keeps a statement until it is reset"
            + (f" (last reset {since:%Y-%m-%d %H:%M:%S %Z})" if since else "")
            + "; once the old code is gone, SELECT pg_stat_statements_reset() starts afresh."
        )
    if check.unreadable:
        out.line(
            f"Note: {check.unreadable} session(s) ran a statement that could not be read"
            " (cut short by track_activity_query_size, or hidden from this role)."
        )
    n = len(check.sessions) + len(check.statements)
    if check.in_use:
        out.line(f"The old shape is still in use ({n}): `pgshift contract` would break it.")
    else:
        out.line("No session uses the old shape.")
    return check.exit_code
