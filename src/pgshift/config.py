"""Effective settings: flags over environment over `[tool.pgshift]` / pgshift.toml over defaults.

Each value remembers where it came from so `pgshift config` can explain it, and the database URL
is only ever shown with its password masked.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pgshift.durations import parse_duration_ms
from pgshift.errors import ConfigError

Source = str  # "flag", "env", "pyproject.toml", "pgshift.toml", "default"


@dataclass(frozen=True)
class Settings:
    """Every knob pgshift reads, already validated."""

    database_url: str | None
    migrations_dir: Path
    migration_timeout_ms: int
    pool_min: int
    pool_max: int
    health_check_enabled: bool
    health_check_interval_ms: int
    backup_enabled: bool
    backup_retention_days: int
    backup_dir: Path
    schema: str
    lock_timeout_ms: int
    lock_retry_total_ms: int
    runner_lock_wait_ms: int
    allow_pooler: bool
    docs_url: str  # where the lint rules' pages are published (absolute links in every output)
    project_root: Path
    sources: Mapping[str, Source]
    # `pgshift health` thresholds and the in-run monitor (PGSHIFT_HEALTH_*); README documents them.
    health_latency_warn_ms: int
    health_latency_crit_ms: int
    health_blocked_warn_ms: int
    health_blocked_crit_ms: int
    health_long_transaction_warn_ms: int
    health_long_transaction_crit_ms: int
    health_idle_transaction_warn_ms: int
    health_idle_transaction_crit_ms: int
    health_lock_held_warn_ms: int
    health_connections_warn_pct: int
    health_connections_crit_pct: int
    health_replication_lag_warn_ms: int
    health_replication_lag_crit_ms: int
    health_abort_blocked_sessions: int
    health_abort_blocked_ms: int
    # The newest migration of an adopted history (`import` and `baseline` set it): lint findings
    # in migrations up to it are history, not errors (`validate --since` overrides it).
    lint_since: str | None = None
    # How long one pre-flight check may run (PGSHIFT_PREFLIGHT_TIMEOUT): its statement_timeout.
    preflight_timeout_ms: int = 30_000

    def masked_url(self) -> str | None:
        return mask_url(self.database_url) if self.database_url else None


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
    _Knob("lint_since", "PGSHIFT_LINT_SINCE", "lint_since", "", _parse_version),
    _Knob(
        "preflight_timeout_ms",
        "PGSHIFT_PREFLIGHT_TIMEOUT",
        "preflight_timeout",
        "30s",
        _parse_ms,
    ),
)

KNOB_ENV = {k.name: k.env for k in _KNOBS}

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
    migrations_dir = Path(values.pop("migrations_dir"))
    backup_dir = Path(values.pop("backup_dir"))
    return Settings(
        database_url=url,
        migrations_dir=_anchor(migrations_dir, sources["migrations_dir"], cwd, root),
        backup_dir=_anchor(backup_dir, sources["backup_dir"], cwd, root),
        project_root=root,
        sources=sources,
        **values,
    )


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
        for word in url.split():
            key, _, value = word.partition("=")
            if key.strip().lower() == "port":
                ports.extend(value.strip("'\"").split(","))
    bad = [p for p in ports if p and not p.isdigit()]
    if bad:
        raise ConfigError(f"{label}: {shown}: port {bad[0]!r} is not a number")


def _refuse_unknown_keys(table: Mapping[str, Any], config_file: Path | None) -> None:
    """A misspelt key in the file would silently fall back to a default; refuse it instead."""
    known_keys = {k.file_key for k in _KNOBS} | {"database_url"}
    for key in table:
        if key not in known_keys:
            raise ConfigError(
                f"{config_file}: unknown setting {key!r} in [tool.pgshift]",
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


def describe(settings: Settings) -> list[tuple[str, str, str]]:
    """(name, shown value, source) rows for `pgshift config`; the URL is masked."""
    rows: list[tuple[str, str, str]] = []
    url = settings.masked_url()
    shown_url = (
        url
        if url
        else ("libpq PG* variables" if settings.database_url == "" else "embedded PostgreSQL")
    )
    rows.append(("DATABASE_URL", shown_url, settings.sources["database_url"]))
    for f in fields(Settings):
        if f.name in ("database_url", "sources", "project_root"):
            continue
        env_name = KNOB_ENV.get(f.name) or f.name
        rows.append((env_name, str(getattr(settings, f.name)), settings.sources.get(f.name, "")))
    rows.append(("project root", str(settings.project_root), "found"))
    return rows
