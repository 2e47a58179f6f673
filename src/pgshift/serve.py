"""The health endpoint: /health (JSON, 200 or 503) and /metrics (Prometheus text) over HTTP.

Why it is shaped this way: a monitoring system may scrape every second from several replicas,
so the checks run at most once per DB_HEALTH_CHECK_INTERVAL behind a lock (concurrent scrapes
wait for the one run in flight and share its result), on the Target's pool of bounded probe
sessions sized by DB_POOL_MIN / DB_POOL_MAX; and it binds to loopback unless told otherwise,
because the report names sessions and tables. Beyond loopback (a pod's address, 0.0.0.0) it
refuses to start without a bearer token, and then answers 401 to every request that does not
carry it: anyone who can reach the port would otherwise read the report. The token comes from a
file or the environment, never from a flag's value, which every user of the machine can read in
the process list. Other sessions' queries are always served with their constants masked
(ops/health.shown_query): the endpoint has no way to ask for them in full.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import math
import socket
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pgshift.errors import PgshiftError, UsageError
from pgshift.ops.health import run_checks
from pgshift.ops.health_rules import (
    CRITICAL,
    EXIT_CODES,
    OK,
    UNKNOWN,
    WARNING,
    Check,
    HealthReport,
)

if TYPE_CHECKING:
    from pgshift.config import Settings
    from pgshift.model import Migration

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9187
#: Where `health --serve` reads its bearer token when no --token-file is given.
TOKEN_VARIABLE = "PGSHIFT_HEALTH_TOKEN"  # noqa: S105 (the variable's name, not a token)
#: A shorter token is too easy to guess for an endpoint anyone on the network may try.
MIN_TOKEN_CHARS = 16


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name) only ever means this machine.

    A name counts only when every address it resolves to is a loopback one; the wildcard
    addresses (0.0.0.0, ::) listen on every interface, so they are not loopback.
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        found = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except (OSError, UnicodeError):
        return False  # HealthServer then fails to bind, naming the address
    return bool(found) and all(
        ipaddress.ip_address(str(a).split("%", 1)[0]).is_loopback for a in found
    )


def read_token(token_file: Path | None, environ: Mapping[str, str]) -> str | None:
    """The bearer token: the first line of ``token_file``, else ``PGSHIFT_HEALTH_TOKEN``.

    UsageError (exit 2) for a file that cannot be read, or a token that is empty or shorter
    than MIN_TOKEN_CHARS; None when neither is given.
    """
    if token_file is not None:
        try:
            text = token_file.read_text(encoding="utf-8")
        except (OSError, UnicodeError) as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            raise UsageError(f"--token-file {token_file}: cannot read it: {reason}") from None
        token, where = (text.splitlines() or [""])[0].strip(), f"--token-file {token_file}"
    elif environ.get(TOKEN_VARIABLE):
        token, where = environ[TOKEN_VARIABLE].strip(), TOKEN_VARIABLE
    else:
        return None
    if len(token) < MIN_TOKEN_CHARS:
        raise UsageError(
            f"{where}: the bearer token must be at least {MIN_TOKEN_CHARS} characters"
            f" (it has {len(token)})",
            hint="e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))' > token`",
        )
    return token


def require_token(host: str, port: int, token: str | None) -> None:
    """Refuse (UsageError, exit 2) to listen beyond loopback without a bearer token."""
    if token is None and not is_loopback(host):
        raise UsageError(
            f"--serve {host}:{port} listens beyond loopback: the health report names sessions"
            " and tables, so it needs a bearer token there",
            hint=f"put a token in a file and pass --token-file FILE, or set {TOKEN_VARIABLE};"
            " clients send `Authorization: Bearer <token>`. Or serve on 127.0.0.1",
        )


def parse_address(text: str) -> tuple[str, int]:
    """`host:port`, `:port`, `port` or `[v6]:port`; no host means loopback."""
    raw = text.strip()
    host, port_text = DEFAULT_HOST, raw
    if raw.startswith("["):
        end = raw.find("]")
        if end < 0:
            raise UsageError(f"--serve {text!r}: missing ']' after the IPv6 address")
        host, port_text = raw[1:end], raw[end + 1 :].lstrip(":")
    elif ":" in raw:
        head, port_text = raw.rsplit(":", 1)
        host = head or DEFAULT_HOST
    try:
        port = int(port_text) if port_text else DEFAULT_PORT
    except ValueError:
        raise UsageError(
            f"--serve {text!r}: the port must be a number", hint="e.g. --serve 127.0.0.1:9187"
        ) from None
    if not 0 <= port <= 65535:
        raise UsageError(f"--serve {text!r}: port {port} is out of range")
    return host, port


class HealthEndpoint:
    """The cached report and the pool it is computed with; the HTTP layer only formats it."""

    def __init__(
        self,
        settings: Settings,
        url: str | None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        from pgshift.db.target import Target

        self.settings = settings
        self.url = url
        self.clock = clock
        self.interval_s = settings.health_check_interval_ms / 1000
        self.runs = 0  # how many times the checks ran: exported, and what tests count
        self._lock = threading.Lock()
        self._report: HealthReport | None = None
        self._computed_at = 0.0
        target = Target.from_settings(settings, url, purpose="health")
        self.pool = target.probe_pool(min_size=settings.pool_min, max_size=settings.pool_max)

    def open(self) -> None:
        # wait=False: the endpoint must answer (critical) even while the database is down.
        self.pool.open()

    def close(self) -> None:
        self.pool.close()

    def report(self) -> HealthReport:
        """The report of the last run, or a fresh one when it is older than the interval."""
        with self._lock:
            now = self.clock()
            if self._report is None or now - self._computed_at >= self.interval_s:
                self._report = self._run()
                self._computed_at = self.clock()
                self.runs += 1
            return self._report

    def _run(self) -> HealthReport:
        from pgshift.project_files import load_migrations

        migrations: tuple[Migration, ...] | PgshiftError
        try:
            migrations = load_migrations(self.settings)
        except PgshiftError as exc:
            migrations = exc
        report = run_checks(self.settings, self.pool.probe, migrations=migrations, url=self.url)
        return HealthReport((*report.checks, self._pool_check()), report.generated_at)

    def _pool_check(self) -> Check:
        stats = self.pool.stats()
        data = {
            "size": stats.get("pool_size", 0),
            "available": stats.get("pool_available", 0),
            "waiting": stats.get("requests_waiting", 0),
            "min": stats.get("pool_min", self.settings.pool_min),
            "max": stats.get("pool_max", self.settings.pool_max),
            "errors": stats.get("connections_errors", 0),
        }
        detail = (
            f"{data['size']} connection(s) open of {data['max']}, {data['available']} idle,"
            f" {data['waiting']} request(s) waiting"
        )
        status = WARNING if data["waiting"] else OK
        return Check("pool", status, detail, data)

    def metrics(self) -> str:
        return render_metrics(self.report(), self.runs)


_STATUS_VALUE = {OK: 0, WARNING: 1, CRITICAL: 2, UNKNOWN: 3}


def _num(value: Any) -> float:
    if value is None or isinstance(value, bool):
        return math.nan if value is None else float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return repr(int(value)) if value == int(value) else repr(value)


def render_metrics(report: HealthReport, runs: int) -> str:
    """Prometheus text exposition (version 0.0.4); a value a check could not learn is NaN."""
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            lines.append(f"{name}{labels} {_fmt(value)}")

    def data(check: str, key: str) -> float:
        try:
            c = report.check(check)
        except KeyError:
            return math.nan
        if c.status == UNKNOWN:
            return math.nan
        return _num(c.data.get(key))

    metric(
        "pgshift_health_status",
        "gauge",
        "Overall health: 0 ok, 1 warning, 2 critical, 3 unknown.",
        [("", _STATUS_VALUE[report.status])],
    )
    metric(
        "pgshift_health_check_status",
        "gauge",
        "Status of each check: 0 ok, 1 warning, 2 critical, 3 unknown.",
        [(f'{{check="{c.name}"}}', _STATUS_VALUE[c.status]) for c in report.checks],
    )
    metric(
        "pgshift_health_check_duration_seconds",
        "gauge",
        "How long each check took in the last run.",
        [(f'{{check="{c.name}"}}', c.duration_ms / 1000) for c in report.checks],
    )
    metric(
        "pgshift_health_runs_total",
        "counter",
        "Times the checks ran (at most once per DB_HEALTH_CHECK_INTERVAL).",
        [("", runs)],
    )
    metric(
        "pgshift_health_last_run_timestamp_seconds",
        "gauge",
        "When the report was computed (Unix time).",
        [("", report.generated_at.timestamp())],
    )
    for name, check, key, help_text in (
        ("pgshift_migrations_pending", "pending_migrations", "count", "Pending migrations."),
        ("pgshift_migrations_failed", "failed_migrations", "count", "Failed or half-applied."),
        ("pgshift_migrations_drifted", "drift", "count", "Applied migrations changed or gone."),
        (
            "pgshift_migrations_expanded",
            "expanded_migrations",
            "count",
            "Migrations in their expand phase (both shapes served).",
        ),
        (
            "pgshift_migrations_expanded_overdue",
            "expanded_migrations",
            "overdue",
            "Expanded longer than PGSHIFT_EXPAND_WARN.",
        ),
        ("pgshift_invalid_indexes", "invalid_indexes", "count", "INVALID indexes."),
        ("pgshift_blocked_sessions", "blocked_sessions", "count", "Sessions waiting on locks."),
        (
            "pgshift_long_transactions",
            "long_transactions",
            "count",
            "Transactions past their threshold.",
        ),
        (
            "pgshift_last_backup_age_seconds",
            "backups",
            "newest_age_s",
            "Age of the newest backup (NaN: none).",
        ),
        (
            "pgshift_migration_lock_held_seconds",
            "migration_lock",
            "held_ms",
            "How long the migration lock has been held (0: free).",
        ),
        ("pgshift_database_connections", "connections", "used", "Client connections in use."),
        (
            "pgshift_database_connections_available",
            "connections",
            "available",
            "max_connections minus reserved.",
        ),
        (
            "pgshift_database_round_trip_seconds",
            "connection",
            "round_trip_ms",
            "Round trip of SELECT 1.",
        ),
        ("pgshift_pool_size", "pool", "size", "Connections the endpoint's pool holds."),
        ("pgshift_pool_available", "pool", "available", "Idle connections in the pool."),
        ("pgshift_pool_requests_waiting", "pool", "waiting", "Requests waiting for the pool."),
    ):
        value = data(check, key)
        if key == "held_ms" and math.isnan(value) and data(check, "held") == 0:
            value = 0.0  # known to be free
        if key in ("held_ms", "round_trip_ms"):
            value = value / 1000
        metric(name, "gauge", help_text, [("", value)])
    _backfill_metrics(report, metric)
    return "\n".join(lines) + "\n"


def _backfill_metrics(
    report: HealthReport, metric: Callable[[str, str, str, list[tuple[str, float]]], None]
) -> None:
    """Unfinished backfills: how many run and how many stopped, and each one's progress."""
    try:
        check = report.check("backfills")
    except KeyError:
        return
    known = check.status != UNKNOWN
    items = list(check.data.get("backfills", ())) if known else []
    for name, key, help_text in (
        ("pgshift_backfills_running", "running", "Backfills a live run is doing."),
        ("pgshift_backfills_stopped", "stopped", "Backfills stopped part-way (re-run continues)."),
    ):
        metric(name, "gauge", help_text, [("", _num(check.data.get(key)) if known else math.nan)])

    def labels(item: Mapping[str, Any]) -> str:
        return f'{{version="{item["version"]}",action="{item["action"]}"}}'

    metric(
        "pgshift_backfill_rows_done",
        "gauge",
        "Rows (keys) an unfinished backfill's committed batches covered.",
        [(labels(i), float(i["rows_done"])) for i in items],
    )
    metric(
        "pgshift_backfill_rows_estimate",
        "gauge",
        "The planner's row estimate of the backfill's table (NaN: never analysed).",
        [(labels(i), _num(i["rows_estimate"])) for i in items],
    )


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def _authorized(self) -> bool:
        """No token configured, or the request carries it (compared in constant time)."""
        token = self.server.token
        if token is None:
            return True
        scheme, _, given = (self.headers.get("Authorization") or "").strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(given.strip().encode("utf-8"), token.encode("utf-8"))

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if not self._authorized():
            self._send(
                401,
                "text/plain; charset=utf-8",
                "unauthorized: send Authorization: Bearer <token>\n",
                {"WWW-Authenticate": 'Bearer realm="pgshift health"'},
            )
            return
        try:
            if path == "/health":
                report = self.server.endpoint.report()
                code = 200 if report.status in (OK, WARNING) else 503
                body = json.dumps(
                    {**report.to_json(), "exit_code": EXIT_CODES[report.status]}, indent=2
                )
                self._send(code, "application/json", body)
            elif path == "/metrics":
                self._send(
                    200, "text/plain; version=0.0.4; charset=utf-8", self.server.endpoint.metrics()
                )
            elif path == "/":
                self._send(200, "text/plain; charset=utf-8", "pgshift health: /health /metrics\n")
            else:
                self._send(404, "text/plain; charset=utf-8", "not found\n")
        except Exception as exc:  # a bug must not kill the server thread; say so, tersely
            self._send(500, "text/plain; charset=utf-8", f"internal error: {type(exc).__name__}\n")

    def _send(
        self, code: int, content_type: str, body: str, headers: Mapping[str, str] | None = None
    ) -> None:
        data = body.encode("utf-8")
        self.send_response(code)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        self.server.on_request(self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    endpoint: HealthEndpoint
    on_request: Callable[[str, str], None]
    token: str | None = None


class _Server6(_Server):
    address_family = socket.AF_INET6


class HealthServer:
    """The endpoint bound to an address; `serve_forever` until `shutdown` (or Ctrl-C).

    ``token``: every request must carry `Authorization: Bearer <token>` (else 401); required
    unless ``host`` is loopback (UsageError otherwise).
    """

    def __init__(
        self, endpoint: HealthEndpoint, host: str, port: int, *, token: str | None = None
    ) -> None:
        self.endpoint = endpoint
        try:
            require_token(host, port, token)
        except UsageError:
            endpoint.close()
            raise
        cls = _Server6 if ":" in host else _Server
        try:
            self.httpd = cls((host, port), _Handler)
        except OSError as exc:
            endpoint.close()
            raise UsageError(
                f"--serve {host}:{port}: cannot listen there: {exc.strerror}"
            ) from None
        self.httpd.endpoint = endpoint
        self.httpd.token = token
        self.httpd.on_request = lambda client, line: None

    @classmethod
    def bind(cls, settings: Settings, address: str, *, token: str | None = None) -> HealthServer:
        from pgshift.embedded import target_url

        host, port = parse_address(address)
        require_token(host, port, token)  # before any database is started or connected to
        url = target_url(settings)
        endpoint = HealthEndpoint(settings, url)
        server = cls(endpoint, host, port, token=token)
        endpoint.open()
        return server

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.httpd.server_address[:2]
        return str(host), int(port)

    @property
    def base_url(self) -> str:
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def serve_forever(self) -> None:
        try:
            self.httpd.serve_forever(poll_interval=0.2)
        finally:
            self.close()

    def shutdown(self) -> None:
        """From another thread: stop `serve_forever`."""
        self.httpd.shutdown()

    def close(self) -> None:
        self.httpd.server_close()
        self.endpoint.close()

    def __enter__(self) -> HealthServer:
        threading.Thread(
            target=self.httpd.serve_forever, name="pgshift-health-http", daemon=True
        ).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.close()


__all__ = [
    "TOKEN_VARIABLE",
    "HealthEndpoint",
    "HealthServer",
    "is_loopback",
    "parse_address",
    "read_token",
    "render_metrics",
    "require_token",
]
