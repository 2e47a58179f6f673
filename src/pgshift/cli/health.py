"""The `health` verb: the report as a table or JSON, repeated with --watch, or served over HTTP.

Its exit codes follow the monitoring-plugin convention (0 ok, 1 warning, 2 critical, 3 unknown),
so even a configuration mistake exits 3 rather than the usual 2: the check could not run.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pgshift
from pgshift.cli.flags import settings_from
from pgshift.cli.render import Output
from pgshift.errors import PgshiftError, UsageError

if TYPE_CHECKING:
    from pgshift.ops.health_rules import HealthReport
    from pgshift.serve import HealthServer


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add `health` to the parser."""
    p = sub.add_parser(
        "health",
        parents=[common],
        help="health report; exit 0 ok, 1 warning, 2 critical, 3 unknown",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--watch", action="store_true", help="repeat the report every DB_HEALTH_CHECK_INTERVAL"
    )
    p.add_argument("--count", type=int, metavar="N", help="with --watch: stop after N reports")
    p.add_argument(
        "--serve",
        metavar="ADDR",
        help="serve /health and /metrics on ADDR (host:port; host defaults to 127.0.0.1)",
    )
    p.add_argument(
        "--token-file",
        type=Path,
        metavar="FILE",
        help="with --serve: every request must send `Authorization: Bearer <the file's first"
        " line>` (default: PGSHIFT_HEALTH_TOKEN); required beyond loopback",
    )
    p.add_argument(
        "--show-queries",
        action="store_true",
        help="show other sessions' queries in full, data included (default: constants as $1)",
    )
    p.set_defaults(handler=cmd_health)


def cmd_health(args: argparse.Namespace, out: Output) -> int:
    from pgshift.ops.health_rules import EXIT_CODES, UNKNOWN  # only `health` pays for them

    if args.count is not None and not args.watch:
        # Silently printing one report would let a script believe it sampled N times.
        raise UsageError(
            "pgshift health: --count only counts the reports of --watch",
            hint="add --watch (`pgshift health --watch --count 2`), or drop --count",
        )
    if args.show_queries and args.serve is not None:
        # The endpoint answers anyone who reaches the port: it never serves data literals.
        raise UsageError(
            "pgshift health: --show-queries is for the command line only; /health always masks"
            " the constants of queries",
            hint="drop --show-queries, or run `pgshift health --show-queries` where you are",
        )
    token = _token(args)
    try:
        settings = settings_from(args)
        if args.serve is not None:
            return _serve(pgshift.health_server(settings, args.serve, token=token), out)
    except PgshiftError as exc:
        out.error(exc)
        return EXIT_CODES[UNKNOWN]
    if not args.watch:
        report = pgshift.health(settings, show_queries=args.show_queries)
        show(out, report, json_lines=False)
        return report.exit_code
    code = EXIT_CODES[UNKNOWN]
    shown = 0
    try:
        while True:
            report = pgshift.health(settings, show_queries=args.show_queries)
            code = report.exit_code
            show(out, report, json_lines=True)
            shown += 1
            if args.count is not None and shown >= args.count:
                break
            time.sleep(settings.health_check_interval_ms / 1000)
    except KeyboardInterrupt:
        pass
    return code


def _token(args: argparse.Namespace) -> str | None:
    """--serve's bearer token; a missing one beyond loopback is a usage error (exit 2), said
    before anything is started, like the other flag mistakes above."""
    from pgshift.config import environment
    from pgshift.serve import parse_address, read_token, require_token

    if args.serve is None:
        if args.token_file is not None:
            raise UsageError(
                "pgshift health: --token-file is the token of --serve's endpoint",
                hint="add --serve ADDR, or drop --token-file",
            )
        return None
    token = read_token(args.token_file, environment())
    require_token(*parse_address(args.serve), token)
    return token


def _serve(server: HealthServer, out: Output) -> int:
    base = server.base_url
    out.line(f"serving {base}/health and {base}/metrics (Ctrl-C stops)")
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


def show(out: Output, report: HealthReport, *, json_lines: bool) -> None:
    if out.json_mode:
        data = {**report.to_json(), "exit_code": report.exit_code}
        if json_lines:
            out.json_line(data)
        else:
            out.json(data)
        return
    rows = [
        [c.status.upper() if c.status != "ok" else "ok", c.name, c.detail] for c in report.checks
    ]
    stamp = f"{report.generated_at:%Y-%m-%d %H:%M:%S} UTC"
    out.table(
        ["status", "check", "detail"],
        rows,
        title=f"health: {report.status} (exit {report.exit_code}) at {stamp}",
    )
