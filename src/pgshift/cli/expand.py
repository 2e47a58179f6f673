"""`pgshift contract`: the end of an expand-contract window, shown, confirmed and run."""

from __future__ import annotations

import argparse
from typing import Any

import pgshift
from pgshift.cli.commands import apply_and_report
from pgshift.cli.flags import settings_from
from pgshift.cli.render import Output
from pgshift.errors import UsageError
from pgshift.plan import Plan


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add `contract`."""
    p = sub.add_parser(
        "contract",
        parents=[common],
        help="end the expand phase of expanded migrations: drop the old shape, keep the new",
    )
    p.add_argument("versions", nargs="*", metavar="VERSION", help="which (default: every one)")
    p.add_argument("--dry-run", action="store_true", help="show what contract would run")
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
    project = pgshift.load_project(settings, allow_problems=True)
    with pgshift.connect(settings) as target:
        plan = pgshift.plan_contract(target, project, tuple(args.versions))
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
