"""`pgshift status --check` and `pgshift wait`: the verbs machines run (SPEC 10).

`status` itself is registered by cli/commands.py; this module adds its `--check` flag and
takes the verb over only when the flag is given, so the two never disagree about `status`.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from pgshift.cli.render import Output
from pgshift.durations import format_duration_ms

#: How often `wait` says what it still waits for (every poll with -v).
PROGRESS_EVERY_S = 10.0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add `wait`, and `--check` to the `status` parser registered before this."""
    status = sub.choices.get("status")
    if status is not None:
        status.add_argument(
            "--check",
            action="store_true",
            help="exit 0 at the project's head (nothing pending, failed or drifted), else 1;"
            " lock-free and read-only",
        )
        plain = status.get_default("handler")
        status.set_defaults(handler=_status_or_check, plain_status=plain)

    p = sub.add_parser(
        "wait", parents=[common], help="block until the database is at the project's head"
    )
    p.add_argument(
        "--timeout", default="5m", metavar="DURATION", help="give up after this (default 5m)"
    )
    p.set_defaults(handler=cmd_wait)


def _status_or_check(args: argparse.Namespace, out: Output) -> int:
    if not args.check:
        code: int = args.plain_status(args, out)
        return code
    import pgshift
    from pgshift.cli.flags import settings_from

    report = pgshift.at_head(settings_from(args))
    if args.json:
        out.json({"at_head": report.at_head, "head": report.head, "not_ready": report.not_ready})
    elif report.at_head:
        out.line(f"at head ({report.head or 'no migrations'})")
    else:
        out.line(f"not at head: {'; '.join(report.not_ready)}")
    return 0 if report.at_head else 1


def cmd_wait(args: argparse.Namespace, out: Output) -> int:
    import pgshift
    from pgshift.cli.flags import settings_from
    from pgshift.durations import parse_duration_ms
    from pgshift.errors import PgshiftError, UsageError

    try:
        timeout_s = parse_duration_ms(args.timeout, default_unit="s") / 1000
    except ValueError as exc:
        raise UsageError(f"--timeout: {exc}") from exc

    out.info(f"waiting until the database is at the project's head (timeout {args.timeout})")
    started = time.monotonic()
    next_progress = started  # the first answer that is not at head is shown at once

    def polled(result: pgshift.HeadReport | PgshiftError) -> None:
        """Every poll with -v; else the first and then one every PROGRESS_EVERY_S, so an
        init container's log shows what it waits for while it waits."""
        nonlocal next_progress
        now = time.monotonic()
        if not out.verbose and now < next_progress:
            return
        first = next_progress == started
        next_progress = now + PROGRESS_EVERY_S
        why = result.message if isinstance(result, PgshiftError) else "; ".join(result.not_ready)
        took = format_duration_ms(int((now - started) * 1000))
        out.info(f"not at head yet: {why}" if first else f"still waiting after {took}: {why}")

    report = pgshift.wait(settings_from(args), timeout_s=timeout_s, on_poll=polled)
    out.line(f"at head ({report.head or 'no migrations'})")
    return 0
