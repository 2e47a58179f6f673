"""Argument parsing and the one place where errors become text and exit codes."""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

from pgshift.errors import BUG_EXIT_CODE, PgshiftError, UsageError


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so bad usage gets our exit code 2 and format."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}", hint=f"see `{self.prog} --help`")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url", metavar="URL", help="target database (else DATABASE_URL, PG*, embedded)"
    )
    parser.add_argument("--dir", metavar="PATH", help="migrations folder (else DB_MIGRATIONS_DIR)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more detail")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    _common(common)
    parser = _Parser(
        prog="pgshift",
        description="PostgreSQL schema migrations without downtime.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version="pgshift 0.1.0")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("up", parents=[common], help="apply pending migrations")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    p.add_argument("--skip-backup", action="store_true", help="do not take a backup first")
    p.add_argument("--target", metavar="VERSION", help="apply up to this version only")
    p.add_argument("--dry-run", action="store_true", help="print the plan and its SQL only")
    p.add_argument("--json", action="store_true", help="print the run as JSON")

    p = sub.add_parser("status", parents=[common], help="one row per migration")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("create", parents=[common], help="write a new migration and its rollback")
    p.add_argument("description", help='e.g. "add user preferences table"')
    p.add_argument("--zero-downtime", action="store_true")
    p.add_argument("--estimated-duration", metavar="DURATION", help='e.g. "30 seconds"')
    p.add_argument("--risk-level", choices=["low", "medium", "high"], default="low")
    p.add_argument("--depends-on", metavar="VERSION", action="append", default=[])

    p = sub.add_parser("config", parents=[common], help="effective settings and their sources")
    p.add_argument("--json", action="store_true")

    server = sub.add_parser("server", parents=[common], help="the embedded PostgreSQL")
    server_sub = server.add_subparsers(
        dest="server_command", metavar="ACTION", parser_class=_Parser
    )
    server_sub.add_parser("status", parents=[common], help="is it running, where")
    server_sub.add_parser("stop", parents=[common], help="stop it")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit code (never raises, except SystemExit from --help)."""
    from pgshift.cli.render import Output

    args_list = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args_list
    out = Output(quiet="-q" in args_list or "--quiet" in args_list, json_mode="--json" in args_list)
    try:
        args = build_parser().parse_args(args_list)
        if args.command is None:
            build_parser().print_help()
            return 2
        from pgshift.cli import commands

        out = Output(
            quiet=args.quiet, json_mode=bool(getattr(args, "json", False)), verbose=args.verbose
        )
        return commands.dispatch(args, out)
    except PgshiftError as exc:
        out.error(exc)
        if debug:
            traceback.print_exc()
        return exc.exit_code
    except KeyboardInterrupt:
        out.plain_error("interrupted")
        return 130
    except Exception:
        traceback.print_exc()
        out.plain_error("this is a bug in pgshift; please report it with the traceback above")
        return BUG_EXIT_CODE


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
