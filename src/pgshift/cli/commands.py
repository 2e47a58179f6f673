"""One small function per verb: read flags, call the library, hand results to the renderer."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import pgshift
from pgshift.cli.flags import settings_from
from pgshift.cli.render import Output, RunRenderer, write
from pgshift.config import GROUPS, SettingRow, setting_rows
from pgshift.durations import format_duration_ms
from pgshift.errors import PgshiftError, Problem, UsageError

if TYPE_CHECKING:
    from pgshift.config import Settings
    from pgshift.db.target import Target
    from pgshift.events import Emit
    from pgshift.lint.finding import Finding
    from pgshift.ops.apply import RunResult
    from pgshift.ops.status_memory import StatusDocument, StatusDocumentRow
    from pgshift.ops.uptodate import Verdicts
    from pgshift.plan import Plan, Step


class Executes(Protocol):
    """How a verb runs a confirmed plan: ``pgshift.apply``, or ``pgshift.rollback``."""

    def __call__(
        self, plan: Plan, target: Target, *, on_event: Emit | None = ..., backup: bool = ...
    ) -> RunResult: ...


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add up, status, create, config and server to the parser."""
    p = sub.add_parser("up", parents=[common], help="apply pending migrations")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    p.add_argument("--skip-backup", action="store_true", help="do not take a backup first")
    p.add_argument("--target", metavar="VERSION", help="apply up to this version only")
    p.add_argument("--dry-run", action="store_true", help="print the plan and its SQL only")
    p.add_argument("--json", action="store_true", help="print the run as JSON")
    p.add_argument(
        "--skip-preflight",
        action="store_true",
        help="do not check the data first (the skip is logged in the history)",
    )
    p.set_defaults(handler=cmd_up)

    p = sub.add_parser("status", parents=[common], help="one row per migration")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_status)

    p = sub.add_parser("create", parents=[common], help="write a new migration and its rollback")
    p.add_argument("description", help='e.g. "add user preferences table"')
    p.add_argument("--zero-downtime", action="store_true")
    p.add_argument("--estimated-duration", metavar="DURATION", help='e.g. "30 seconds"')
    p.add_argument("--risk-level", choices=["low", "medium", "high"], default="low")
    p.add_argument("--depends-on", metavar="VERSION", action="append", default=[])
    p.set_defaults(handler=cmd_create)

    p = sub.add_parser("config", parents=[common], help="effective settings and their sources")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_config)

    server = sub.add_parser("server", parents=[common], help="the embedded PostgreSQL")
    server.set_defaults(handler=cmd_server)
    actions = server.add_subparsers(
        dest="server_command", metavar="ACTION", parser_class=type(server)
    )
    actions.add_parser("status", parents=[common], help="is it running, where")
    actions.add_parser("stop", parents=[common], help="stop it")


# -- up ---------------------------------------------------------------------------------------


def _plan_rows(plan: Plan, newest_applied: str = "") -> list[list[str]]:
    rows = []
    for step in plan.steps:
        m = step.migration
        h = m.header
        outside = (
            sum(1 for s in m.statements if not s.transactional)
            if h.transaction
            else len(m.statements)
        )
        rows.append(
            [
                m.version,
                m.description,
                {True: "yes", False: "no", None: "-"}[h.zero_downtime],
                h.risk_level or "-",
                format_duration_ms(h.estimated_duration_ms),
                str(len(m.statements)) + (f" ({outside} outside a transaction)" if outside else ""),
                _plan_note(step, newest_applied),
            ]
        )
    return rows


def _plan_note(step: Step, newest_applied: str) -> str:
    """Why a step deserves a second look: it resumes a stopped run, or it is out of order."""
    notes = []
    if step.resume:
        notes.append(f"resume after {step.resume.statements_done}")
    if step.action == "apply" and step.migration.version < newest_applied:
        notes.append(f"out of order: older than applied {newest_applied}")
    return "; ".join(notes)


def _show_plan(out: Output, plan: Plan, newest_applied: str = "") -> None:
    out.table(
        ["version", "description", "zero-downtime", "risk", "estimated", "statements", "note"],
        _plan_rows(plan, newest_applied),
        title=f"Plan: {len(plan.steps)} migration(s) to apply",
    )


def _confirmed(
    out: Output, plan: Plan, *, yes: bool, backup_wanted: bool, newest_applied: str = ""
) -> bool:
    """Show the plan and ask on a terminal; without one, refuse unless --yes."""
    _show_plan(out, plan, newest_applied)
    if backup_wanted:
        out.line("a backup is taken before applying (--skip-backup to skip)")
    count = len(plan.steps)
    return out.confirm(
        f"Apply {count} migration(s)?",
        yes=yes,
        refusal=f"refusing to apply {count} migration(s)",
        hint="pass --yes to apply without asking",
    )


def _nothing_to_apply(out: Output, *, as_json: bool) -> int:
    if as_json:
        out.json({"run_id": None, "steps": [], "backup_id": None, "preflight": []})
    else:
        out.line("Nothing to apply: the database is up to date.")
    return 0


def _remembered(args: argparse.Namespace, settings: Settings) -> Verdicts | None:
    """The remembered answers (ops/uptodate.py) a plain `up` asks before reading any file;
    `--dry-run` and `--target` always plan in full."""
    if args.dry_run or args.target is not None:
        return None
    from pgshift.ops.uptodate import Verdicts

    return Verdicts(settings)  # its stat of the folder comes before the files are read


def _nothing_left(plan: Plan, target: Target, verdicts: Verdicts | None) -> None:
    """A plan with no step: older checksums rewritten (under the lock), else remembered."""
    if plan.checksum_upgrades:  # else nothing to run: spare importing the runner
        pgshift.apply(plan, target)
    elif verdicts is not None:
        from pgshift.ops.uptodate import UP

        verdicts.remember(UP, plan.history_digest)


def cmd_up(args: argparse.Namespace, out: Output) -> int:
    from pgshift.ops.uptodate import UP

    settings = settings_from(args)
    verdicts = _remembered(args, settings)
    if verdicts is not None and verdicts.holds(UP) is not None:
        if out.verbose:
            out.info(
                "the same files and history as the last `up` that found nothing to do:"
                " answered without reading them (.pgshift/cache/verdicts.json)"
            )
        return _nothing_to_apply(out, as_json=args.json)
    project = pgshift.load_project(settings, folder=verdicts.folder if verdicts else None)
    with pgshift.connect(settings) as target:
        plan = pgshift.plan_up(project, target, to=args.target, preflight=not args.skip_preflight)
        newest = plan.newest_applied
        if args.dry_run:
            return _dry_run(
                out, plan, as_json=args.json, newest_applied=newest, docs_url=settings.docs_url
            )
        if not plan.steps:
            _nothing_left(plan, target, verdicts)
            return _nothing_to_apply(out, as_json=args.json)
        if plan.findings:
            _show_findings(out, plan.findings, settings.docs_url)
        refused = _preflight_gate(out, plan, as_json=args.json)
        if refused is not None:
            return refused
        backup = not args.skip_backup
        wanted = backup and settings.backup_enabled
        if not _confirmed(out, plan, yes=args.yes, backup_wanted=wanted, newest_applied=newest):
            raise UsageError("cancelled: nothing was applied")
        code = apply_and_report(
            out, plan, target, backup=backup, as_json=args.json, extra=_preflight_json(plan)
        )
        expanded = [s.migration.name for s in plan.steps if s.expansion is not None]
        if code == 0 and expanded and not args.json:
            out.line(
                f"expanded: {', '.join(expanded)}: the old and the new code both work now;"
                " deploy the new code, then `pgshift contract` (`pgshift contract --check` says"
                " whether the old shape is still used)"
            )
        return code


def _preflight_gate(out: Output, plan: Plan, *, as_json: bool) -> int | None:
    """Before confirming: say a skip, show the duration warnings, and refuse (exit 1) a plan
    whose pre-flight predicts a failure; with --json the refusal is one document."""
    from pgshift.errors import PreflightFailed
    from pgshift.ops.run import refuse_preflight

    err = Output(quiet=out.quiet, json_mode=True)  # stderr: stdout stays the plan and run
    if plan.preflight_skipped:
        err.line("pre-flight: skipped (--skip-preflight); the skip is logged in the history")
    for r in plan.preflight:
        if r.status == "warn":
            err.line(f"pre-flight warning: {r.file}:{r.line}: {r.detail}")
    try:
        refuse_preflight(plan)
    except PreflightFailed as exc:
        if not as_json:
            raise
        return failure_json(out, exc, **_preflight_json(plan))
    return None


def _preflight_json(plan: Plan) -> dict[str, Any]:
    """The "preflight" key of `up --json`: every check's result, in plan order."""
    return {"preflight": [r.as_json() for r in plan.preflight]}


def _show_preflight(out: Output, plan: Plan) -> None:
    """`up --dry-run`: every check (pass, fail, not-checked with its reason) and duration."""
    if plan.preflight_skipped:
        out.line("pre-flight: skipped (--skip-preflight)")
        return
    if not plan.preflight:
        out.line("pre-flight: no statement's success depends on the data")
        return
    out.table(
        ["file", "line", "check", "status", "detail"],
        [
            [r.file, str(r.line), r.check, r.status, r.detail + _took(r.duration_ms)]
            for r in plan.preflight
        ],
        title=f"Pre-flight: {len(plan.preflight)} result(s)",
    )


def _took(ms: float | None) -> str:
    return "" if ms is None else f" ({ms:.1f} ms)"


def apply_and_report(
    out: Output,
    plan: Plan,
    target: Target,
    *,
    backup: bool,
    as_json: bool,
    execute: Executes | None = None,
    extra: dict[str, Any] | None = None,
) -> int:
    """Run ``plan`` with live progress; with --json, one document, the error inside it.

    ``execute`` is the library call that runs it (``pgshift.apply`` unless given), so every
    verb that runs a plan (`up`, `rollback safe`, `rollback to-version`) reports alike;
    ``extra`` joins the JSON document (`up`'s "preflight").
    """
    renderer = RunRenderer(out)
    run = execute or pgshift.apply
    try:
        result = run(plan, target, on_event=renderer, backup=backup)
    except PgshiftError as exc:
        renderer.close()
        renderer.backup.done()
        if not as_json:
            raise
        return failure_json(out, exc, **(extra or {}))
    if as_json:
        out.json({**run_json(result), **(extra or {})})
    return 0


def failure_json(out: Output, exc: PgshiftError, **extra: Any) -> int:
    """--json after a failure: one document, what was done and the error inside it (the
    error also on stderr, for a person); returns the error's exit code."""
    error = {"message": exc.message, "exit_code": exc.exit_code, "hint": exc.hint}
    out.json({**run_json(exc.result), **extra, "error": error})
    out.plain_error(exc.message, exc.hint)
    return exc.exit_code


def run_json(result: RunResult | None) -> dict[str, Any]:
    """SPEC's JSON shape of `up` and `rollback ...`."""
    if result is None:
        return {"run_id": None, "steps": [], "backup_id": None}
    steps = [
        {"version": s.version, "action": s.action, "status": s.status, "duration_ms": s.duration_ms}
        for s in result.steps
    ]
    return {"run_id": result.run_id or None, "steps": steps, "backup_id": result.backup_id}


def _dry_run(
    out: Output, plan: Plan, *, as_json: bool, newest_applied: str = "", docs_url: str
) -> int:
    """Print the plan, its SQL and its lint findings; change nothing."""
    if as_json:
        out.json(
            {
                "dry_run": True,
                "steps": [
                    {
                        **_step_json(s.migration),
                        "out_of_order": s.migration.version < newest_applied,
                        "kind": "expand-contract" if s.expansion is not None else s.kind,
                        **_expansion_json(s),
                    }
                    for s in plan.steps
                ],
                "findings": [f.to_json(docs_url) for f in plan.findings],
                **_preflight_json(plan),
                "preflight_skipped": plan.preflight_skipped,
            }
        )
        return 0
    if not plan.steps:
        out.line("Nothing to apply: the database is up to date.")
        return 0
    if plan.findings:
        _show_findings(out, plan.findings, docs_url)
    _show_plan(out, plan, newest_applied)
    _show_preflight(out, plan)
    for step in plan.steps:
        m = step.migration
        out.line(f"\n-- {m.path}")
        if step.expansion is not None:
            _show_expansion(out, step)
            continue
        if m.header.expand_contract and step.action == "apply":
            out.line(
                "-- @expand-contract: runs as written, none of its tables is on the database"
                " yet (no running code uses them)"
            )
        if step.kind == "backfill":
            out.line("-- a backfill: runs in key-range batches, each in a transaction of its own")
        for stmt in m.statements:
            where = (
                "" if stmt.transactional and m.header.transaction else "  -- outside a transaction"
            )
            out.line(f"-- line {stmt.line}{where}\n{stmt.sql};")
    out.line("\ndry run: nothing was changed")
    return 0


def _expansion_json(step: Step) -> dict[str, Any]:
    """An `@expand-contract` step's phases, for `up --dry-run --json`."""
    e = step.expansion
    if e is None:
        return {}

    def statements(phase: str) -> list[dict[str, Any]]:
        return [
            {"line": st.line, "sql": st.sql, "transactional": st.transactional, "kind": st.kind}
            for st in e.statements(phase)
        ]

    return {
        "expand": statements("expand"),
        "contract": statements("contract"),
        "summary": list(e.summary),
        "removes": list(e.removes),
    }


def _show_expansion(out: Output, step: Step) -> None:
    """What `up` runs of an `@expand-contract` migration, and what `pgshift contract` will."""
    from pgshift.model import BACKFILL_KIND

    e = step.expansion
    assert e is not None
    out.line("-- expand and contract: `up` runs the expand phase; both shapes are served until")
    out.line("-- `pgshift contract`")
    for line in e.summary:
        out.line(f"--   {line}")
    for st in e.statements("expand"):
        how = (
            "  -- in batches"
            if st.kind == BACKFILL_KIND
            else ("" if st.transactional else "  -- outside a transaction")
        )
        out.line(f"-- line {st.line}{how}\n{st.sql};")
    out.line("-- then `pgshift contract` runs, in one transaction:")
    for st in e.statements("contract"):
        out.line(f"--   {st.sql};")


def _show_findings(out: Output, findings: Sequence[Finding], docs_url: str) -> None:
    """Lint findings of the planned files: shown before confirming, never blocking (issue 4)."""
    from pgshift.lint.finding import render_text

    # Diagnostics go to stderr (an Output in JSON mode writes its lines there), so that the
    # plan and the run on stdout read the same with or without findings.
    err = Output(quiet=out.quiet, json_mode=True)
    err.line(f"lint: {len(findings)} finding(s) in the planned files (see `pgshift validate`):")
    for f in findings:
        err.line(render_text(f, None, docs_url))


def _step_json(m: Any, newest_applied: str = "") -> dict[str, Any]:
    return {
        "version": m.version,
        "action": "apply",
        "status": "planned",
        "duration_ms": None,
        "out_of_order": m.version < newest_applied,
    }


# -- status -----------------------------------------------------------------------------------


def cmd_status(args: argparse.Namespace, out: Output) -> int:
    """`pgshift status`: the document (pgshift.status_document, remembered when nothing shown
    has changed), printed as it is with --json, else drawn as the table and lines below."""
    document = pgshift.status_document(settings_from(args))
    if args.json:
        out.json(document)
    else:
        _status_table(out, document)
    _warn(document["warnings"])
    return 0


def _status_table(out: Output, document: StatusDocument) -> None:
    """The table, its title and the lines after it, from the document alone: the full path
    and a remembered status draw the same output from the same document."""
    if out.quiet:  # -q: none of it is shown; spare drawing a row per migration
        return
    rows = [
        [
            r["version"],
            r["description"] + "".join(f" + {name}" for name in r["duplicates"]),
            _state_text(r) + (" (duplicate version)" if r["duplicates"] else ""),
            _applied_at_text(r["applied_at"]),
            f"{format_duration_ms(r['duration_ms'])} / {format_duration_ms(r['estimated_ms'])}",
            r["risk_level"] or "-",
            {True: "yes", False: "no", None: "-"}[r["zero_downtime"]],
        ]
        for r in document["migrations"]
    ]
    out.table(
        [
            "version",
            "description",
            "state",
            "applied at",
            "took / estimated",
            "risk",
            "zero-downtime",
        ],
        rows,
        title=f"{document['applied']} applied, {document['pending']} pending"
        + (f", {document['failed']} failed" if document["failed"] else "")
        + (f", {document['half_reverted']} half-reverted" if document["half_reverted"] else "")
        + (f", {document['expanded']} expanded" if document["expanded"] else ""),
        styles={"state": _state_style},
    )
    for r in document["migrations"]:
        if r["half_reverted"] and r["detail"]:
            out.line(f"{r['version']}_{r['description']}: half-reverted: {r['detail']}")
        elif r["state"] == "failed" and r["detail"]:
            out.line(f"{r['version']}_{r['description']}: {r['detail']}")
    problems = document["problems"]
    if problems:  # read-only: shown, never a refusal (SPEC 1)
        out.line(f"{len(problems)} problem(s) in the migration files:")
        for p in problems:
            out.line(f"  {Problem(p['file'], p['line'], p['message'], p['column'])}")


def _applied_at_text(applied_at: str | None) -> str:
    """``2025-05-28 12:00:00`` from the document's ISO 8601 time, in the zone it was shown in."""
    return "-" if applied_at is None else f"{applied_at[:10]} {applied_at[11:19]}"


def _warn(warnings: Sequence[str]) -> None:
    """Warnings on stderr, so that they reach a reader of `--json` and of a pipe alike."""
    for text in warnings:
        write(sys.stderr, f"warning: {text}\n")


def _state_style(text: str) -> str | None:
    """The colour of a state cell on a terminal: its first word's (cli/colour.py)."""
    from pgshift.cli.colour import STATE_STYLE

    return STATE_STYLE.get(text.split(" ", 1)[0])


def _state_text(r: StatusDocumentRow) -> str:
    """The state column: SPEC's state, and why when that alone would not tell the story."""
    state, backfill = r["state"], r["backfill"]
    if backfill is not None:
        if r["running"]:
            return backfill["text"]
        prefix = f"{state}: " if state == "failed" else ""
        again = "pgshift up" if backfill["action"] == "apply" else "pgshift rollback safe"
        return f"{prefix}{backfill['text']}, stopped (`{again}` continues it)"
    if r["half_reverted"]:
        return f"{state} (half-reverted)"
    if r["running"]:
        return f"{state} (reverting)" if r["applied_at"] is not None else f"{state} (running)"
    return state


# -- create, config, server -------------------------------------------------------------------


def cmd_create(args: argparse.Namespace, out: Output) -> int:
    forward, rollback = pgshift.create(
        settings_from(args),
        args.description,
        zero_downtime=args.zero_downtime,
        estimated_duration=args.estimated_duration,
        risk_level=args.risk_level,
        depends_on=args.depends_on,
    )
    out.line(str(forward))
    out.line(str(rollback))
    return 0


def cmd_config(args: argparse.Namespace, out: Output) -> int:
    settings = settings_from(args)
    rows = setting_rows(settings)
    if args.json:
        out.json(_config_json(rows))
        return 0
    for group in GROUPS:
        shown = [[r.name, r.shown, r.source] for r in rows if r.group == group]
        out.table(["setting", "value", "source"], shown, title=f"[{group}]")
    return 0


def _config_json(rows: list[SettingRow]) -> dict[str, Any]:
    """`config --json`: numbers, booleans and unset values as JSON's own types, not strings.

    The rows' text is phrased for a person; for a script, the setting's typed value is used when
    it is a number, a boolean or unset, and the phrased text otherwise (paths, the masked URL).
    An unnamed database is null, its source saying where the default comes from. Each setting
    keeps its flat key (its variable's name) and says its group.
    """
    data: dict[str, Any] = {}
    for row in rows:
        value: Any = row.shown
        if row.name == "DATABASE_URL" or row.value is None or isinstance(row.value, bool | int):
            value = row.value
        data[row.name] = {"value": value, "source": row.source, "group": row.group}
    return data


def cmd_server(args: argparse.Namespace, out: Output) -> int:
    from pgshift import embedded

    settings = settings_from(args)
    if args.server_command == "stop":
        was_running = embedded.stop(settings.project_root)
        out.line(
            "embedded PostgreSQL stopped" if was_running else "embedded PostgreSQL was not running"
        )
        return 0
    if args.server_command == "status":
        st = embedded.server_status(settings.project_root)
        out.line(f"data:    {st.data_dir}")
        out.line(f"running: {'yes' if st.running else 'no'}")
        if st.running:
            out.line(f"pid:     {st.pid}")
            out.line(f"version: {st.version}")
            out.line(f"url:     {st.url}")
        return 0
    raise UsageError("pgshift server: say `status` or `stop`")
