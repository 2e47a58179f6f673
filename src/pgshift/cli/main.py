"""Argument parsing and the one place where errors become text and exit codes."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

from pgshift.errors import BUG_EXIT_CODE, PgshiftError, UsageError

if TYPE_CHECKING:
    from pgshift.cli.render import Output


class _Formatter(argparse.HelpFormatter):
    """argparse's formatter, sized like shutil.get_terminal_size without importing shutil.

    argparse builds a formatter for every option it adds, and the stock one imports shutil
    (and with it bz2, lzma and zlib) to read the terminal's width: a cost on every start,
    for help text that a command which runs never prints.
    """

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        if width is None:
            width = _terminal_columns() - 2
        super().__init__(prog, indent_increment, max_help_position, width)


def _terminal_columns() -> int:
    """$COLUMNS, else the width of the terminal on stdout, else 80 (shutil's order)."""
    import os

    from pgshift.config import columns as env_columns

    columns = env_columns() or 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns if columns > 0 else 80


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so bad usage gets our exit code 2 and format.

    Prefixes of long options are refused (``allow_abbrev=False``): `--dry` silently meaning
    `--dry-run` today would silently mean something else once a second `--dry...` flag exists.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}", hint=f"see `{self.prog} --help`")

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        """argparse's check of a choice (a verb, `--risk-level`), naming the closest one."""
        choices = action.choices
        if choices is None or value in choices:
            return
        from pgshift.cli.suggest import closest

        names = [str(c) for c in choices]
        near = closest(str(value), names)
        if isinstance(action, argparse._SubParsersAction):
            what = f"unknown command {value!r}"
        else:
            what = f"argument {argparse._get_action_name(action)}: invalid choice {value!r}"
        raise UsageError(
            f"{self.prog}: {what}" + (f"; did you mean {near!r}?" if near else ""),
            hint=f"choose from {', '.join(names)}; see `{self.prog} --help`",
        )

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        """Like argparse's, but an unknown argument is blamed on the verb it came with.

        argparse lets the subparser collect unknown words and the top parser refuse them, so
        its message would point to `pgshift --help` instead of the verb's own help.
        """
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            # The verb, then its action (`rollback_command`, `server_command`, ...), if any.
            words = [self.prog, getattr(parsed, "command", None)]
            words += [v for k, v in vars(parsed).items() if k.endswith("_command")]
            prog = " ".join(w for w in words if isinstance(w, str) and w)
            from pgshift.cli.suggest import closest, option_strings

            options = option_strings(self, [w for w in words[1:] if isinstance(w, str) and w])
            near = [(x, closest(x, options)) for x in extras if x.startswith("-")]
            guesses = "; ".join(f"did you mean {n!r} for {x!r}?" for x, n in near if n)
            raise UsageError(
                f"{prog}: unrecognized arguments: {' '.join(extras)}"
                + (f"; {guesses}" if guesses else ""),
                hint=f"see `{prog} --help`",
            )
        return parsed


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


def _registrars(verb: str | None = None) -> list[Registrar]:
    """Each command module adds its verbs and sets ``handler``; main never grows per verb.

    For the latency-sensitive verbs (DESIGN.md principle 6) only the module that defines them
    is imported; build_parser falls back to every module if that guess ever goes stale.
    """
    if verb == "validate":  # a linter's start-up counts too (issue 10): its module alone
        from pgshift.cli import validate

        return [validate.register]
    from pgshift.cli import commands, ops_verbs

    if verb in _FAST_VERBS:
        return [commands.register, ops_verbs.register]
    from pgshift.cli import adopt, completion, expand, fleet, health, records, rollback, validate

    fast = [commands.register, ops_verbs.register]
    return [
        *fast,
        expand.register,
        health.register,
        validate.register,
        rollback.register,
        adopt.register,
        fleet.register,
        records.register,
        completion.register,
    ]


#: Verbs a no-op run of which must start fast: cli/commands.py and cli/ops_verbs.py register them.
_FAST_VERBS = frozenset({"up", "status", "wait"})
#: Verbs whose parser is built from a guess of their module (build_parser checks the guess).
_GUESSED_VERBS = _FAST_VERBS | {"validate"}
_VALUE_OPTIONS = frozenset({"--database-url", "--dir"})


def _verb_of(argv: Sequence[str]) -> str | None:
    """The verb of a command line: its first word that is neither an option nor its value."""
    expect_value = False
    for word in argv:
        if expect_value:
            expect_value = False
        elif word in _VALUE_OPTIONS:
            expect_value = True
        elif not word.startswith("-"):
            return word
    return None


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or for a ``verb`` of _GUESSED_VERBS one with only its module's verbs."""
    parser, choices = _build(_registrars(verb))
    if verb in _GUESSED_VERBS and verb not in choices:
        parser, _ = _build(_registrars())
    return parser


def _build(registrars: list[Registrar]) -> tuple[argparse.ArgumentParser, set[str]]:
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
    for register in registrars:
        register(sub, common)
    return parser, set(sub.choices)


class Terminated(KeyboardInterrupt):
    """SIGTERM outside a run: stop like Ctrl-C does (psycopg cancels a query it waits for)."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated


@contextlib.contextmanager
def _sigterm_stops() -> Iterator[None]:
    """SIGTERM ends any command cleanly with exit 143 instead of killing it where it stands.

    During a run the runner handles SIGTERM itself (ops/stopping.py: the running step gets a
    grace period) and puts this handler back afterwards.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit code (never raises, except SystemExit from --help)."""
    with _sigterm_stops():
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    from pgshift.cli.render import Output, stream_closed

    args_list = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args_list
    out = Output(quiet="-q" in args_list or "--quiet" in args_list, json_mode="--json" in args_list)
    try:
        args = build_parser(_verb_of(args_list)).parse_args(args_list)
        if args.command is None:
            build_parser().print_help()
            return 2
        out = Output(
            quiet=args.quiet, json_mode=bool(getattr(args, "json", False)), verbose=args.verbose
        )
        handler: Callable[[argparse.Namespace, Output], int] = args.handler
        if not args.quiet:
            return handler(args, out)
        from pgshift.notices import quiet_notices

        with quiet_notices():  # -q: not even the note that an embedded server is being made
            return handler(args, out)
    except PgshiftError as exc:
        out.error(exc)
        if debug:
            _print_traceback()
        return exc.exit_code
    except KeyboardInterrupt as exc:
        signum = signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT
        out.plain_error(f"interrupted by {signal.Signals(signum).name}")
        return 128 + signum
    except BrokenPipeError:
        # A write that did not go through Output (argparse's help): the reader left, which
        # is not a failure of the command.
        stream_closed(sys.stdout)
        return 0
    except Exception as exc:
        converted = _database_error(exc, args_list)
        if converted is not None:
            out.error(converted)
            if debug:
                _print_traceback()
            return converted.exit_code
        _print_traceback()
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
    from pgshift.config import database_url_variable
    from pgshift.db.connect import redact
    from pgshift.errors import CheckFailed, DatabaseUnavailable

    text = str(exc).strip() or type(exc).__name__
    urls = [database_url_variable()]
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
    leave(main())


def leave(code: int) -> NoReturn:
    """End the process with ``code``, without the interpreter tearing every module down.

    Once main() has returned, every session is closed, every run's threads are joined and
    every file is written: what the interpreter's teardown still does is free, object by
    object, memory the operating system takes back at once (40 ms of a run that imported
    psycopg). So the streams are flushed, the exit handlers run (logging's among them), and
    the process ends there. A thread still running is waited for as usual instead.
    """
    others = [t for t in threading.enumerate() if t is not threading.main_thread()]
    if any(t.is_alive() and not t.daemon for t in others):
        sys.exit(code)
    import atexit
    import os

    atexit._run_exitfuncs()
    _flush(sys.stdout, sys.stderr)  # after the handlers: what they write is kept too
    os._exit(code)


def _flush(*streams: Any) -> None:
    from pgshift.cli.render import stream_closed

    for stream in streams:
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):  # the reader left, or the stream is closed
            stream_closed(stream)
        except OSError:
            pass  # as the interpreter's own flush at exit would: nothing more to do


def _print_traceback() -> None:
    """The current exception's traceback on stderr; traceback (and textwrap) are imported only
    when one is printed, not on every start."""
    import traceback

    traceback.print_exc()
