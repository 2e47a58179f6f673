"""Argument parsing and the one place where errors become text and exit codes."""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pgshift.errors import BUG_EXIT_CODE, PgshiftError, UsageError

if TYPE_CHECKING:
    from pgshift.cli.render import Output


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so bad usage gets our exit code 2 and format."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}", hint=f"see `{self.prog} --help`")


def _common(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """Global options, accepted before and after the verb.

    After the verb their defaults are suppressed, so `pgshift --dir x up` keeps the x.
    """

    def default(value: object) -> object:
        return value if top else argparse.SUPPRESS

    parser.add_argument(
        "--database-url",
        metavar="URL",
        default=default(None),
        help="target database (else DATABASE_URL, PG*, embedded)",
    )
    parser.add_argument(
        "--dir",
        metavar="PATH",
        default=default(None),
        help="migrations folder (else DB_MIGRATIONS_DIR)",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", default=default(False), help="print only errors"
    )
    parser.add_argument("-v", "--verbose", action="count", default=default(0), help="more detail")
    parser.add_argument(
        "--debug", action="store_true", default=default(False), help="show tracebacks"
    )


Registrar = Callable[[Any, argparse.ArgumentParser], None]


def _registrars() -> list[Registrar]:
    """Each command module adds its verbs and sets ``handler``; main never grows per verb."""
    from pgshift.cli import commands, fleet, health, rollback, validate

    return [
        commands.register,
        health.register,
        validate.register,
        rollback.register,
        fleet.register,
    ]


def build_parser() -> argparse.ArgumentParser:
    top = _Parser(add_help=False)
    _common(top, top=True)
    common = _Parser(add_help=False)
    _common(common, top=False)
    parser = _Parser(
        prog="pgshift",
        description="PostgreSQL schema migrations without downtime.",
        parents=[top],
    )
    parser.add_argument("--version", action="version", version="pgshift 0.1.0")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for register in _registrars():
        register(sub, common)
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
        out = Output(
            quiet=args.quiet, json_mode=bool(getattr(args, "json", False)), verbose=args.verbose
        )
        handler: Callable[[argparse.Namespace, Output], int] = args.handler
        return handler(args, out)
    except PgshiftError as exc:
        out.error(exc)
        if debug:
            traceback.print_exc()
        return exc.exit_code
    except KeyboardInterrupt:
        out.plain_error("interrupted")
        return 130
    except Exception as exc:
        converted = _database_error(exc, args_list)
        if converted is not None:
            out.error(converted)
            if debug:
                traceback.print_exc()
            return converted.exit_code
        traceback.print_exc()
        out.plain_error("this is a bug in pgshift; please report it with the traceback above")
        return BUG_EXIT_CODE


def _database_error(exc: Exception, argv: list[str]) -> PgshiftError | None:
    """A server error no layer below expected is the database's answer, not a pgshift bug.

    A lost or refused connection is exit 3; anything else the server refused is exit 1. The
    message is redacted of every URL the user gave us.
    """
    psycopg = sys.modules.get("psycopg")
    if psycopg is None or not isinstance(exc, psycopg.Error):
        return None
    import os

    from pgshift.db.connect import redact
    from pgshift.errors import CheckFailed, DatabaseUnavailable

    text = str(exc).strip() or type(exc).__name__
    urls = [os.environ.get("DATABASE_URL", "")]
    urls += [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--database-url"]
    urls += [a.split("=", 1)[1] for a in argv if a.startswith("--database-url=")]
    for url in urls:
        text = redact(text, url)
    if isinstance(exc, psycopg.OperationalError):
        return DatabaseUnavailable(f"database error: {text}")
    sqlstate = getattr(exc, "sqlstate", None)
    return CheckFailed(
        f"the database refused: {text}" + (f" (SQLSTATE {sqlstate})" if sqlstate else "")
    )


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
