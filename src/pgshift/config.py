"""Effective settings: flags over environment over `[tool.pgshift]` / pgshift.toml over defaults.

Each value remembers where it came from so `pgshift config` can explain it, and the database URL
is only ever shown with its password masked.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pgshift.durations import parse_duration_ms
from pgshift.errors import ConfigError

Source = str  # "flag", "env", "pyproject.toml", "pgshift.toml", "default"


@dataclass(frozen=True)
class ConnectionSettings:
    """Which database pgshift works on, where its history lives, and how it may reach it."""

    url: str | None  # None: the embedded server; "": libpq's PG* variables
    schema: str  # the history schema (PGSHIFT_SCHEMA)
    allow_pooler: bool
    pool_min: int  # the probe pool of `health --serve`
    pool_max: int


@dataclass(frozen=True)
class ProjectSettings:
    """Where the project and its migrations are."""

    root: Path
    migrations_dir: Path


@dataclass(frozen=True)
class RunnerSettings:
    """How a run waits, times out and stops (README: "How `up` keeps production running")."""

    lock_timeout_ms: int
    lock_retry_total_ms: int
    lock_wait_ms: int  # PGSHIFT_RUNNER_LOCK_WAIT: waiting for another runner's lock
    migration_timeout_ms: int  # each statement's statement_timeout
    stop_grace_ms: int  # PGSHIFT_STOP_GRACE: SIGTERM lets the running statement finish
    preflight_timeout_ms: int  # PGSHIFT_PREFLIGHT_TIMEOUT: one pre-flight check's bound


@dataclass(frozen=True)
class BackupSettings:
    """The backup taken before a run, and how long backups are kept."""

    enabled: bool
    dir: Path
    retention_days: int


@dataclass(frozen=True)
class HealthSettings:
    """`pgshift health` thresholds and the in-run monitor (PGSHIFT_HEALTH_*)."""

    check_enabled: bool
    check_interval_ms: int
    latency_warn_ms: int
    latency_crit_ms: int
    blocked_warn_ms: int
    blocked_crit_ms: int
    long_transaction_warn_ms: int
    long_transaction_crit_ms: int
    idle_transaction_warn_ms: int
    idle_transaction_crit_ms: int
    lock_held_warn_ms: int
    connections_warn_pct: int
    connections_crit_pct: int
    replication_lag_warn_ms: int
    replication_lag_crit_ms: int
    abort_blocked_sessions: int
    abort_blocked_ms: int


@dataclass(frozen=True)
class BackfillSettings:
    """Backfills (SPEC 14): the time a batch should take (its size adapts to it), and the replica
    lag above which the backfill pauses between batches."""

    batch_time_ms: int
    max_lag_ms: int


@dataclass(frozen=True)
class ExpandSettings:
    """Expand and contract (SPEC 15): how long a migration may stay expanded, serving the old
    and the new shape at once, before `health` warns that its `pgshift contract` is overdue."""

    warn_ms: int  # PGSHIFT_EXPAND_WARN


@dataclass(frozen=True)
class LintSettings:
    """Where findings link their rule's page, and where an adopted history ends."""

    docs_url: str  # where the lint rules' pages are published (absolute links in every output)
    # The newest migration of an adopted history (`import` and `baseline` set it): lint findings
    # in migrations up to it are history, not errors (`validate --since` overrides it).
    since: str | None


#: The groups in the order `pgshift config` shows them.
GROUPS = ("connection", "project", "runner", "backup", "health", "backfill", "expand", "lint")


@dataclass(frozen=True)
class Settings:
    """Every knob pgshift reads, already validated, in groups (``settings.runner.lock_timeout_ms``).

    ``sources`` says where each came from, keyed by the knob's flat name (``lock_timeout_ms``,
    as the flags of load_settings), plus ``database_url``.

    The flat attributes below the groups (``settings.lock_timeout_ms``) are the record's former
    shape, kept read-only while callers move to the groups; they are deprecated.
    """

    connection: ConnectionSettings
    project: ProjectSettings
    runner: RunnerSettings
    backup: BackupSettings
    health: HealthSettings
    backfill: BackfillSettings
    expand: ExpandSettings
    lint: LintSettings
    sources: Mapping[str, Source]

    def masked_url(self) -> str | None:
        url = self.connection.url
        return mask_url(url) if url else None

    # -- deprecated flat names: read-only aliases of the groups' fields ---------------------------

    @property
    def database_url(self) -> str | None:
        """Deprecated: ``settings.connection.url``."""
        return self.connection.url

    @property
    def schema(self) -> str:
        """Deprecated: ``settings.connection.schema``."""
        return self.connection.schema

    @property
    def allow_pooler(self) -> bool:
        """Deprecated: ``settings.connection.allow_pooler``."""
        return self.connection.allow_pooler

    @property
    def pool_min(self) -> int:
        """Deprecated: ``settings.connection.pool_min``."""
        return self.connection.pool_min

    @property
    def pool_max(self) -> int:
        """Deprecated: ``settings.connection.pool_max``."""
        return self.connection.pool_max

    @property
    def project_root(self) -> Path:
        """Deprecated: ``settings.project.root``."""
        return self.project.root

    @property
    def migrations_dir(self) -> Path:
        """Deprecated: ``settings.project.migrations_dir``."""
        return self.project.migrations_dir

    @property
    def lock_timeout_ms(self) -> int:
        """Deprecated: ``settings.runner.lock_timeout_ms``."""
        return self.runner.lock_timeout_ms

    @property
    def lock_retry_total_ms(self) -> int:
        """Deprecated: ``settings.runner.lock_retry_total_ms``."""
        return self.runner.lock_retry_total_ms

    @property
    def runner_lock_wait_ms(self) -> int:
        """Deprecated: ``settings.runner.lock_wait_ms``."""
        return self.runner.lock_wait_ms

    @property
    def migration_timeout_ms(self) -> int:
        """Deprecated: ``settings.runner.migration_timeout_ms``."""
        return self.runner.migration_timeout_ms

    @property
    def backup_enabled(self) -> bool:
        """Deprecated: ``settings.backup.enabled``."""
        return self.backup.enabled

    @property
    def backup_dir(self) -> Path:
        """Deprecated: ``settings.backup.dir``."""
        return self.backup.dir

    @property
    def backup_retention_days(self) -> int:
        """Deprecated: ``settings.backup.retention_days``."""
        return self.backup.retention_days

    @property
    def health_check_enabled(self) -> bool:
        """Deprecated: ``settings.health.check_enabled``."""
        return self.health.check_enabled

    @property
    def health_check_interval_ms(self) -> int:
        """Deprecated: ``settings.health.check_interval_ms``."""
        return self.health.check_interval_ms

    @property
    def health_latency_warn_ms(self) -> int:
        """Deprecated: ``settings.health.latency_warn_ms``."""
        return self.health.latency_warn_ms

    @property
    def health_latency_crit_ms(self) -> int:
        """Deprecated: ``settings.health.latency_crit_ms``."""
        return self.health.latency_crit_ms

    @property
    def health_blocked_warn_ms(self) -> int:
        """Deprecated: ``settings.health.blocked_warn_ms``."""
        return self.health.blocked_warn_ms

    @property
    def health_blocked_crit_ms(self) -> int:
        """Deprecated: ``settings.health.blocked_crit_ms``."""
        return self.health.blocked_crit_ms

    @property
    def health_long_transaction_warn_ms(self) -> int:
        """Deprecated: ``settings.health.long_transaction_warn_ms``."""
        return self.health.long_transaction_warn_ms

    @property
    def health_long_transaction_crit_ms(self) -> int:
        """Deprecated: ``settings.health.long_transaction_crit_ms``."""
        return self.health.long_transaction_crit_ms

    @property
    def health_idle_transaction_warn_ms(self) -> int:
        """Deprecated: ``settings.health.idle_transaction_warn_ms``."""
        return self.health.idle_transaction_warn_ms

    @property
    def health_idle_transaction_crit_ms(self) -> int:
        """Deprecated: ``settings.health.idle_transaction_crit_ms``."""
        return self.health.idle_transaction_crit_ms

    @property
    def health_lock_held_warn_ms(self) -> int:
        """Deprecated: ``settings.health.lock_held_warn_ms``."""
        return self.health.lock_held_warn_ms

    @property
    def health_connections_warn_pct(self) -> int:
        """Deprecated: ``settings.health.connections_warn_pct``."""
        return self.health.connections_warn_pct

    @property
    def health_connections_crit_pct(self) -> int:
        """Deprecated: ``settings.health.connections_crit_pct``."""
        return self.health.connections_crit_pct

    @property
    def health_replication_lag_warn_ms(self) -> int:
        """Deprecated: ``settings.health.replication_lag_warn_ms``."""
        return self.health.replication_lag_warn_ms

    @property
    def health_replication_lag_crit_ms(self) -> int:
        """Deprecated: ``settings.health.replication_lag_crit_ms``."""
        return self.health.replication_lag_crit_ms

    @property
    def health_abort_blocked_sessions(self) -> int:
        """Deprecated: ``settings.health.abort_blocked_sessions``."""
        return self.health.abort_blocked_sessions

    @property
    def health_abort_blocked_ms(self) -> int:
        """Deprecated: ``settings.health.abort_blocked_ms``."""
        return self.health.abort_blocked_ms

    @property
    def backfill_batch_time_ms(self) -> int:
        """Deprecated: ``settings.backfill.batch_time_ms``."""
        return self.backfill.batch_time_ms

    @property
    def backfill_max_lag_ms(self) -> int:
        """Deprecated: ``settings.backfill.max_lag_ms``."""
        return self.backfill.max_lag_ms

    @property
    def docs_url(self) -> str:
        """Deprecated: ``settings.lint.docs_url``."""
        return self.lint.docs_url

    @property
    def lint_since(self) -> str | None:
        """Deprecated: ``settings.lint.since``."""
        return self.lint.since


def _parse_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("true", "1", "yes", "on"):
        return True
    if low in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"{text!r} is not a boolean (use true or false)")


def _parse_int(text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise ValueError(f"{text!r} must not be negative")
    return value


def _parse_ms(text: str) -> int:
    return parse_duration_ms(text, default_unit="ms")


def _parse_seconds(text: str) -> int:
    """A duration in which a bare number is seconds (PGSHIFT_STOP_GRACE: `10`, `30s`, `500ms`)."""
    return parse_duration_ms(text, default_unit="s")


def _parse_version(text: str) -> str | None:
    """A 14-digit migration version, or None for an empty value (no adopted history)."""
    value = text.strip()
    if not value:
        return None
    if len(value) != 14 or not value.isdigit():
        raise ValueError(f"{text!r} is not a migration version (14 digits, YYYYMMDDHHMMSS)")
    return value


#: The rule pages of the released project; a team that hosts its own copy sets PGSHIFT_DOCS_URL.
DEFAULT_DOCS_URL = "https://github.com/pgshift/pgshift/blob/main/docs/rules/"


def _parse_docs_url(text: str) -> str:
    """An absolute base URL (http, https or file) under which ``<rule>.md`` pages live."""
    value = text.strip()
    scheme, sep, rest = value.partition("://")
    if not sep or scheme.lower() not in ("http", "https", "file") or not rest.strip("/"):
        raise ValueError(
            f"{text!r} is not an absolute http(s) or file URL (e.g. {DEFAULT_DOCS_URL})"
        )
    return value if value.endswith("/") else value + "/"


def _parse_schema(text: str) -> str:
    value = text.strip()
    if not value or len(value.encode()) > 63:
        raise ValueError(f"{text!r} is not a valid schema name (1 to 63 bytes)")
    return value


@dataclass(frozen=True)
class _Knob:
    name: str  # Settings field
    env: str | None  # environment variable
    file_key: str  # key in [tool.pgshift]
    default: str
    parse: Callable[[str], Any]


_KNOBS: tuple[_Knob, ...] = (
    _Knob("migrations_dir", "DB_MIGRATIONS_DIR", "migrations_dir", "./migrations", str),
    _Knob("migration_timeout_ms", "DB_MIGRATION_TIMEOUT", "migration_timeout", "300000", _parse_ms),
    _Knob("pool_min", "DB_POOL_MIN", "pool_min", "5", _parse_int),
    _Knob("pool_max", "DB_POOL_MAX", "pool_max", "20", _parse_int),
    _Knob(
        "health_check_enabled",
        "DB_HEALTH_CHECK_ENABLED",
        "health_check_enabled",
        "true",
        _parse_bool,
    ),
    _Knob(
        "health_check_interval_ms",
        "DB_HEALTH_CHECK_INTERVAL",
        "health_check_interval",
        "30000",
        _parse_ms,
    ),
    _Knob("backup_enabled", "DB_BACKUP_ENABLED", "backup_enabled", "true", _parse_bool),
    _Knob(
        "backup_retention_days",
        "DB_BACKUP_RETENTION_DAYS",
        "backup_retention_days",
        "30",
        _parse_int,
    ),
    _Knob("backup_dir", "DB_BACKUP_DIR", "backup_dir", ".pgshift/backups", str),
    _Knob("schema", "PGSHIFT_SCHEMA", "schema", "pgshift", _parse_schema),
    _Knob("lock_timeout_ms", "PGSHIFT_LOCK_TIMEOUT", "lock_timeout", "500", _parse_ms),
    _Knob(
        "lock_retry_total_ms",
        "PGSHIFT_LOCK_RETRY_TOTAL",
        "lock_retry_total",
        "60000",
        _parse_ms,
    ),
    _Knob("allow_pooler", "PGSHIFT_ALLOW_POOLER", "allow_pooler", "false", _parse_bool),
    _Knob("docs_url", "PGSHIFT_DOCS_URL", "docs_url", DEFAULT_DOCS_URL, _parse_docs_url),
    _Knob(
        "runner_lock_wait_ms",
        "PGSHIFT_RUNNER_LOCK_WAIT",
        "runner_lock_wait",
        "60000",
        _parse_ms,
    ),
    _Knob(
        "health_latency_warn_ms",
        "PGSHIFT_HEALTH_LATENCY_WARN",
        "health_latency_warn",
        "100ms",
        _parse_ms,
    ),
    _Knob(
        "health_latency_crit_ms",
        "PGSHIFT_HEALTH_LATENCY_CRIT",
        "health_latency_crit",
        "1s",
        _parse_ms,
    ),
    _Knob(
        "health_blocked_warn_ms",
        "PGSHIFT_HEALTH_BLOCKED_WARN",
        "health_blocked_warn",
        "5s",
        _parse_ms,
    ),
    _Knob(
        "health_blocked_crit_ms",
        "PGSHIFT_HEALTH_BLOCKED_CRIT",
        "health_blocked_crit",
        "60s",
        _parse_ms,
    ),
    _Knob(
        "health_long_transaction_warn_ms",
        "PGSHIFT_HEALTH_LONG_TRANSACTION_WARN",
        "health_long_transaction_warn",
        "5 minutes",
        _parse_ms,
    ),
    _Knob(
        "health_long_transaction_crit_ms",
        "PGSHIFT_HEALTH_LONG_TRANSACTION_CRIT",
        "health_long_transaction_crit",
        "30 minutes",
        _parse_ms,
    ),
    _Knob(
        "health_idle_transaction_warn_ms",
        "PGSHIFT_HEALTH_IDLE_TRANSACTION_WARN",
        "health_idle_transaction_warn",
        "1 minute",
        _parse_ms,
    ),
    _Knob(
        "health_idle_transaction_crit_ms",
        "PGSHIFT_HEALTH_IDLE_TRANSACTION_CRIT",
        "health_idle_transaction_crit",
        "10 minutes",
        _parse_ms,
    ),
    _Knob(
        "health_lock_held_warn_ms",
        "PGSHIFT_HEALTH_LOCK_HELD_WARN",
        "health_lock_held_warn",
        "1 hour",
        _parse_ms,
    ),
    _Knob(
        "health_connections_warn_pct",
        "PGSHIFT_HEALTH_CONNECTIONS_WARN",
        "health_connections_warn_pct",
        "80",
        _parse_int,
    ),
    _Knob(
        "health_connections_crit_pct",
        "PGSHIFT_HEALTH_CONNECTIONS_CRIT",
        "health_connections_crit_pct",
        "95",
        _parse_int,
    ),
    _Knob(
        "health_replication_lag_warn_ms",
        "PGSHIFT_HEALTH_REPLICATION_LAG_WARN",
        "health_replication_lag_warn",
        "10s",
        _parse_ms,
    ),
    _Knob(
        "health_replication_lag_crit_ms",
        "PGSHIFT_HEALTH_REPLICATION_LAG_CRIT",
        "health_replication_lag_crit",
        "60s",
        _parse_ms,
    ),
    _Knob(
        "health_abort_blocked_sessions",
        "PGSHIFT_HEALTH_ABORT_BLOCKED_SESSIONS",
        "health_abort_blocked_sessions",
        "5",
        _parse_int,
    ),
    _Knob(
        "health_abort_blocked_ms",
        "PGSHIFT_HEALTH_ABORT_BLOCKED_FOR",
        "health_abort_blocked",
        "10s",
        _parse_ms,
    ),
    _Knob("stop_grace_ms", "PGSHIFT_STOP_GRACE", "stop_grace", "10s", _parse_seconds),
    _Knob("lint_since", "PGSHIFT_LINT_SINCE", "lint_since", "", _parse_version),
    _Knob(
        "backfill_batch_time_ms",
        "PGSHIFT_BACKFILL_BATCH_TIME",
        "backfill_batch_time",
        "200ms",
        _parse_ms,
    ),
    _Knob(
        "backfill_max_lag_ms",
        "PGSHIFT_BACKFILL_MAX_LAG",
        "backfill_max_lag",
        "10s",
        _parse_ms,
    ),
    _Knob("expand_warn_ms", "PGSHIFT_EXPAND_WARN", "expand_warn", "7 days", _parse_ms),
    _Knob(
        "preflight_timeout_ms",
        "PGSHIFT_PREFLIGHT_TIMEOUT",
        "preflight_timeout",
        "30s",
        _parse_ms,
    ),
)

KNOB_ENV = {k.name: k.env for k in _KNOBS}

#: Where each knob lives in the grouped Settings: flat name -> (group, field). The flat name is
#: what load_settings' flags, ``Settings.sources`` and the deprecated flat attributes use.
PLACE: dict[str, tuple[str, str]] = {
    "database_url": ("connection", "url"),
    "schema": ("connection", "schema"),
    "allow_pooler": ("connection", "allow_pooler"),
    "pool_min": ("connection", "pool_min"),
    "pool_max": ("connection", "pool_max"),
    "project_root": ("project", "root"),
    "migrations_dir": ("project", "migrations_dir"),
    "lock_timeout_ms": ("runner", "lock_timeout_ms"),
    "lock_retry_total_ms": ("runner", "lock_retry_total_ms"),
    "runner_lock_wait_ms": ("runner", "lock_wait_ms"),
    "migration_timeout_ms": ("runner", "migration_timeout_ms"),
    "stop_grace_ms": ("runner", "stop_grace_ms"),
    "preflight_timeout_ms": ("runner", "preflight_timeout_ms"),
    "backup_enabled": ("backup", "enabled"),
    "backup_dir": ("backup", "dir"),
    "backup_retention_days": ("backup", "retention_days"),
    "health_check_enabled": ("health", "check_enabled"),
    "health_check_interval_ms": ("health", "check_interval_ms"),
    "health_latency_warn_ms": ("health", "latency_warn_ms"),
    "health_latency_crit_ms": ("health", "latency_crit_ms"),
    "health_blocked_warn_ms": ("health", "blocked_warn_ms"),
    "health_blocked_crit_ms": ("health", "blocked_crit_ms"),
    "health_long_transaction_warn_ms": ("health", "long_transaction_warn_ms"),
    "health_long_transaction_crit_ms": ("health", "long_transaction_crit_ms"),
    "health_idle_transaction_warn_ms": ("health", "idle_transaction_warn_ms"),
    "health_idle_transaction_crit_ms": ("health", "idle_transaction_crit_ms"),
    "health_lock_held_warn_ms": ("health", "lock_held_warn_ms"),
    "health_connections_warn_pct": ("health", "connections_warn_pct"),
    "health_connections_crit_pct": ("health", "connections_crit_pct"),
    "health_replication_lag_warn_ms": ("health", "replication_lag_warn_ms"),
    "health_replication_lag_crit_ms": ("health", "replication_lag_crit_ms"),
    "health_abort_blocked_sessions": ("health", "abort_blocked_sessions"),
    "health_abort_blocked_ms": ("health", "abort_blocked_ms"),
    "backfill_batch_time_ms": ("backfill", "batch_time_ms"),
    "backfill_max_lag_ms": ("backfill", "max_lag_ms"),
    "expand_warn_ms": ("expand", "warn_ms"),
    "docs_url": ("lint", "docs_url"),
    "lint_since": ("lint", "since"),
}

_PG_ENV = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE")


def mask_url(url: str) -> str:
    """Replace the password of a libpq URL or key=value string with ``***``."""
    if "://" in url:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, host = netloc.rsplit("@", 1)
            if ":" in userinfo:
                userinfo = userinfo.split(":", 1)[0] + ":***"
            netloc = f"{userinfo}@{host}"
        query = "&".join(
            "password=***" if q.lower().startswith("password=") else q
            for q in parts.query.split("&")
            if q
        )
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    words = []
    for word in url.split():
        key = word.split("=", 1)[0].strip().lower()
        words.append(f"{key}=***" if key == "password" else word)
    return " ".join(words)


def find_project_root(start: Path) -> tuple[Path, Path | None]:
    """The nearest folder, walking up from ``start``, that is a project's root, and its
    config file.

    A root holds `pgshift.toml`, a `pyproject.toml` with [tool.pgshift], pgshift's own
    `.pgshift/` folder (the embedded server and the caches), or `.git`. So `cd migrations &&
    pgshift status --dir .` finds the project above and its embedded server, instead of
    making a second one in migrations/.pgshift. With none of these up to the file system's
    root, ``start`` itself is the project (a bare folder of migrations).
    """
    for folder in (start, *start.parents):
        if (folder / "pgshift.toml").is_file():
            return folder, folder / "pgshift.toml"
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file() and "pgshift" in (_read_toml(pyproject).get("tool") or {}):
            return folder, pyproject
        if (folder / ".pgshift").is_dir() or (folder / ".git").exists():
            return folder, None
    return start, None


def _read_toml(path: Path) -> dict[str, Any]:
    import tomllib  # only when there is a file to read: 3 ms of every start otherwise

    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc


def _file_table(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    data = _read_toml(path)
    if path.name == "pgshift.toml":
        table = data.get("tool", {}).get("pgshift", data)
    else:
        table = data.get("tool", {}).get("pgshift", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.pgshift] must be a table")
    return table


def load_settings(
    flags: Mapping[str, str | None] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Resolve every setting; a bad value raises ConfigError naming its variable, key or flag.

    ``flags`` maps Settings field names (and "database_url") to command-line values.
    """
    flags = flags or {}
    env = os.environ if env is None else env
    cwd = (cwd or Path.cwd()).resolve()
    root, config_file = find_project_root(cwd)
    layers = _Layers(flags, env, _file_table(config_file), config_file)
    _refuse_unknown_keys(layers.table, config_file)

    values: dict[str, Any] = {}
    sources: dict[str, Source] = {}
    for knob in _KNOBS:
        raw, sources[knob.name], label = layers.raw(knob)
        try:
            values[knob.name] = knob.parse(raw)
        except ValueError as exc:
            raise ConfigError(f"bad value for {label}: {exc}") from None

    if values["pool_min"] > values["pool_max"]:
        raise ConfigError(
            f"DB_POOL_MIN ({values['pool_min']}) is larger than DB_POOL_MAX ({values['pool_max']})"
        )

    url, sources["database_url"] = layers.database_url()
    if url:
        check_url(url, _URL_LABELS.get(sources["database_url"], str(sources["database_url"])))
    values["database_url"] = url
    values["project_root"] = root
    values["migrations_dir"] = _anchor(
        Path(values["migrations_dir"]), sources["migrations_dir"], cwd, root
    )
    values["backup_dir"] = _anchor(Path(values["backup_dir"]), sources["backup_dir"], cwd, root)
    return _grouped(values, sources)


_GROUP_TYPES: dict[str, type] = {
    "connection": ConnectionSettings,
    "project": ProjectSettings,
    "runner": RunnerSettings,
    "backup": BackupSettings,
    "health": HealthSettings,
    "backfill": BackfillSettings,
    "expand": ExpandSettings,
    "lint": LintSettings,
}


def _grouped(values: Mapping[str, Any], sources: Mapping[str, Source]) -> Settings:
    """The Settings of flat values (keyed as PLACE), each group built from its own fields."""
    groups: dict[str, dict[str, Any]] = {group: {} for group in GROUPS}
    for flat, value in values.items():
        group, field = PLACE[flat]
        groups[group][field] = value
    built = {group: _GROUP_TYPES[group](**fields_) for group, fields_ in groups.items()}
    return Settings(sources=sources, **built)


_URL_LABELS = {"flag": "--database-url", "env": "DATABASE_URL"}
_URL_SCHEMES = ("postgresql", "postgres")


def check_url(url: str, label: str) -> None:
    """Refuse a URL libpq cannot mean (another scheme, a port that is not a number) up front.

    Otherwise the connection attempt fails with exit 3, "database unreachable", which sends
    people looking at the network instead of at the setting (exit 2 names it). The URL is
    shown masked. Only what is certainly wrong is refused; libpq judges the rest.
    """
    from urllib.parse import parse_qs, urlsplit

    shown = mask_url(url)
    ports: list[str] = []
    if "://" in url:
        scheme = url.split("://", 1)[0].lower()
        if scheme not in _URL_SCHEMES:
            raise ConfigError(
                f"{label}: {shown} is not a PostgreSQL URL ({scheme}://)",
                hint="use postgresql://user@host:5432/dbname",
            )
        parts = urlsplit(url)
        hosts = parts.netloc.rpartition("@")[2]
        for host in filter(None, hosts.split(",")):
            after = host.partition("]")[2] if host.startswith("[") else host  # [IPv6]:port
            if ":" in after:
                ports.append(after.rpartition(":")[2])
        for value in parse_qs(parts.query).get("port", []):
            ports.extend(value.split(","))
    else:
        pairs = _conninfo_pairs(url)
        if pairs is None:
            raise ConfigError(
                f"{label}: {shown!r} is neither a PostgreSQL URL nor key=value settings",
                hint="use postgresql://user@host:5432/dbname, or host=... dbname=... user=...",
            )
        ports.extend(v for k, v in pairs if k.lower() == "port" for v in v.split(","))
    bad = [p for p in ports if p and not p.isdigit()]
    if bad:
        raise ConfigError(f"{label}: {shown}: port {bad[0]!r} is not a number")


def _conninfo_pairs(text: str) -> list[tuple[str, str]] | None:
    """The (key, value) pairs of a libpq key=value string, or None when it is not one.

    libpq's grammar (conninfo_parse): ``key = value`` separated by whitespace, a value either
    a bare word or '...' with backslash escapes. Anything else (a word without "=") is what
    libpq refuses, or, handed to some drivers, silently replaces with a local socket.
    """
    pairs: list[tuple[str, str]] = []
    i = _skip_space(text, 0)
    while i < len(text):
        start = i
        while i < len(text) and not text[i].isspace() and text[i] != "=":
            i += 1
        key = text[start:i]
        i = _skip_space(text, i)
        if not key or not text.startswith("=", i):
            return None
        read = _conninfo_value(text, _skip_space(text, i + 1))
        if read is None:
            return None
        value, i = read
        pairs.append((key, value))
        i = _skip_space(text, i)
    return pairs


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i


def _conninfo_value(text: str, i: int) -> tuple[str, int] | None:
    """The value starting at ``i`` and where it ends; None for an unterminated quote."""
    quoted = text.startswith("'", i)
    i += quoted
    value: list[str] = []
    while i < len(text) and (text[i] != "'" if quoted else not text[i].isspace()):
        if text[i] == "\\" and i + 1 < len(text):
            i += 1
        value.append(text[i])
        i += 1
    if quoted:
        if i == len(text):
            return None
        i += 1
    return "".join(value), i


def _refuse_unknown_keys(table: Mapping[str, Any], config_file: Path | None) -> None:
    """A misspelt key in the file would silently fall back to a default; refuse it instead."""
    known_keys = {k.file_key for k in _KNOBS} | {"database_url"}
    for key in table:
        if key not in known_keys:
            import difflib

            near = difflib.get_close_matches(key, sorted(known_keys), n=1, cutoff=0.6)
            guess = f"; did you mean {near[0]!r}?" if near else ""
            raise ConfigError(
                f"{config_file}: unknown setting {key!r} in [tool.pgshift]{guess}",
                hint="known settings: " + ", ".join(sorted(known_keys)),
            )


@dataclass(frozen=True)
class _Layers:
    """The places a setting can come from, asked in precedence order: flag, env, file, default.

    Kept as one value so that each setting's lookup is one small method rather than a branch
    of ``load_settings``.
    """

    flags: Mapping[str, str | None]
    env: Mapping[str, str]
    table: Mapping[str, Any]
    config_file: Path | None

    @property
    def file_label(self) -> Source:
        return self.config_file.name if self.config_file else "file"

    def raw(self, knob: _Knob) -> tuple[str, Source, str]:
        """The knob's unparsed text, where it came from, and how an error names that place."""
        flag_value = self.flags.get(knob.name)
        if flag_value is not None:
            return flag_value, "flag", "--" + knob.file_key.replace("_", "-")
        if knob.env and self.env.get(knob.env) not in (None, ""):
            return self.env[knob.env], "env", knob.env
        if knob.file_key in self.table:
            value = self.table[knob.file_key]
            raw = str(value).lower() if isinstance(value, bool) else str(value)
            return raw, self.file_label, f"{self.config_file}: {knob.file_key}"
        return knob.default, "default", knob.name

    def database_url(self) -> tuple[str | None, Source]:
        """The URL and its source; "" lets libpq read the PG* variables, None means embedded."""
        if self.flags.get("database_url"):
            return self.flags["database_url"], "flag"
        if self.env.get("DATABASE_URL"):
            return self.env["DATABASE_URL"], "env"
        if self.table.get("database_url"):
            return str(self.table["database_url"]), self.file_label
        if any(self.env.get(name) for name in _PG_ENV):
            return "", "env (PG* variables)"
        return None, "embedded"


def _anchor(path: Path, source: Source, cwd: Path, root: Path) -> Path:
    """Relative paths typed by the user follow the shell; those from files follow the project."""
    if path.is_absolute():
        return path
    return (cwd if source in ("flag", "env") else root) / path


@dataclass(frozen=True)
class SettingRow:
    """One line of `pgshift config`: the setting's group, name, value as shown, and source."""

    group: str
    name: str  # its environment variable (the name users set it by), else its own name
    shown: str  # phrased for a person; the URL masked
    source: Source
    value: object  # the typed value (the masked URL for the database)


def setting_rows(settings: Settings) -> list[SettingRow]:
    """Every setting, group by group in GROUPS order, for `pgshift config`."""
    url = settings.masked_url()
    if url:
        shown_url = url
    elif settings.connection.url == "":
        shown_url = "libpq PG* variables"
    else:
        shown_url = "embedded PostgreSQL"
    rows = [
        SettingRow("connection", "DATABASE_URL", shown_url, settings.sources["database_url"], url)
    ]
    for flat, (group, field) in PLACE.items():
        if flat in ("database_url", "project_root"):
            continue
        value = getattr(getattr(settings, group), field)
        name = KNOB_ENV.get(flat) or flat
        rows.append(SettingRow(group, name, str(value), settings.sources.get(flat, ""), value))
    root = settings.project.root
    rows.append(SettingRow("project", "project root", str(root), "found", root))
    return sorted(rows, key=lambda row: GROUPS.index(row.group))


def describe(settings: Settings) -> list[tuple[str, str, str]]:
    """(name, shown value, source) rows for `pgshift config`; the URL is masked."""
    return [(row.name, row.shown, row.source) for row in setting_rows(settings)]


# -- the rest of the environment ------------------------------------------------------------------
# Every environment variable pgshift reads is read in this module (tests/unit/test_architecture.py
# checks it): the knobs above through load_settings, and the few below, read where no Settings is
# at hand (before a project is found, in a forked helper, deep in a child process's setup).

WORKERS_VARIABLE = "PGSHIFT_WORKERS"
FAILPOINT_VARIABLE = "PGSHIFT_FAILPOINT"


def workers(environ: Mapping[str, str] | None = None) -> int:
    """PGSHIFT_WORKERS: how many processes may share the work (1: this one only), default 2."""
    text = (os.environ if environ is None else environ).get(WORKERS_VARIABLE, "").strip()
    if not text:
        return 2
    if not text.isdecimal() or int(text) < 1:
        raise ConfigError(
            f"{WORKERS_VARIABLE}={text!r} is not a number of processes",
            hint=f"{WORKERS_VARIABLE}=1 keeps the work in one process",
        )
    return int(text)


def pg_bin_override() -> Path | None:
    """PGSHIFT_PG_BIN: the folder of the PostgreSQL client programs, instead of searching."""
    folder = os.environ.get("PGSHIFT_PG_BIN")
    return Path(folder) if folder else None


def libpq_disabled() -> bool:
    """PGSHIFT_LIBPQ=off: read through psycopg instead of calling libpq directly (db/readonly)."""
    return os.environ.get("PGSHIFT_LIBPQ", "").lower() in ("off", "0", "no", "false")


def failpoint() -> str | None:
    """PGSHIFT_FAILPOINT: the instant at which the fault tests make pgshift kill itself.

    They use it to stop a run at an exact instant (after a statement's result came back, before
    anything else is sent); it costs one dictionary lookup per step.
    """
    return os.environ.get(FAILPOINT_VARIABLE)


def columns() -> int | None:
    """$COLUMNS as a positive number, else None (the terminal's width is asked then)."""
    try:
        value = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        return None
    return value if value > 0 else None


def colour_refused() -> bool:
    """NO_COLOR set and not empty (https://no-color.org), or TERM=dumb: no colour anywhere."""
    return bool(os.environ.get("NO_COLOR", "")) or os.environ.get("TERM", "") == "dumb"


def database_url_variable() -> str:
    """$DATABASE_URL as set, even where a flag overrides it: a driver message that may quote it
    is redacted of it (cli/main.py)."""
    return os.environ.get("DATABASE_URL", "")


def environment() -> dict[str, str]:
    """A copy of the process environment, for the child processes that inherit it (pg_dump,
    pg_restore, psql: libpq's PG* variables reach them this way)."""
    return dict(os.environ)
