"""The health rules: frozen facts judged against thresholds into statuses, with no I/O at all.

Why a module of its own: what is a warning and what pages someone are plain functions of frozen
facts, so every threshold is unit-tested from literals; ops/health.py gathers the facts (through
the Target's bounded probe sessions) and the in-run monitor (ops/monitor.py) reuses the
lock-queue rules, neither of which a rule knows about.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pgshift.durations import format_duration_ms

if TYPE_CHECKING:
    from pgshift.config import Settings
    from pgshift.errors import Problem
    from pgshift.history import History, Progress
    from pgshift.model import (
        BlockedSession,
        ConnectionUse,
        InvalidIndex,
        LockState,
        PoolerProbe,
        Replica,
        SessionInfo,
    )
    from pgshift.plan import MigrationState

OK = "ok"
WARNING = "warning"
CRITICAL = "critical"
UNKNOWN = "unknown"

#: Worst first when aggregating: a check that could not run may hide a problem, so it outranks a
#: known warning, but not a known critical.
_SEVERITY = {OK: 0, WARNING: 1, UNKNOWN: 2, CRITICAL: 3}
#: The monitoring-plugin convention (Nagios, Icinga, Sensu): SPEC section 2.
EXIT_CODES = {OK: 0, WARNING: 1, CRITICAL: 2, UNKNOWN: 3}

#: Oldest major version pgshift's catalog queries work on (pg_stat_progress_create_index).
MIN_WORKING_MAJOR = 12
#: Oldest major version the PostgreSQL community still supports.
MIN_SUPPORTED_MAJOR = 14

#: How long an idle migration lock with no pgshift worker connected may exist before it is called
#: orphaned (capped by PGSHIFT_HEALTH_LOCK_HELD_WARN): the gap between taking the lock and opening
#: the runner's connection is milliseconds, but a backup may run under the lock.
ORPHAN_GRACE_MS = 60_000

CHECK_NAMES = (
    "connection",
    "server_version",
    "pooler",
    "connections",
    "pending_migrations",
    "failed_migrations",
    "drift",
    "migration_files",
    "invalid_indexes",
    "blocked_sessions",
    "long_transactions",
    "migration_lock",
    "backfills",
    "expanded_migrations",
    "replication",
    "backups",
)


@dataclass(frozen=True)
class Check:
    """One line of the report: a status, a one-line reason, and structured facts."""

    name: str
    status: str
    detail: str
    data: Mapping[str, Any] = field(default_factory=dict)
    duration_ms: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "detail": self.detail,
            "data": _jsonable(self.data),
            "duration_ms": round(self.duration_ms, 3),
        }


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def worst(statuses: Iterable[str]) -> str:
    return max(statuses, key=lambda s: _SEVERITY[s], default=OK)


@dataclass(frozen=True)
class HealthReport:
    checks: tuple[Check, ...]
    generated_at: datetime

    @property
    def status(self) -> str:
        return worst(c.status for c in self.checks)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def check(self, name: str) -> Check:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        """SPEC's shape (`status`, `checks[name, status, detail]`) plus data and timings."""
        return {
            "status": self.status,
            "checks": [c.to_json() for c in self.checks],
            "generated_at": self.generated_at.isoformat(),
        }


@dataclass(frozen=True)
class Thresholds:
    """The PGSHIFT_HEALTH_* settings, in milliseconds and percent."""

    latency_warn_ms: int = 100
    latency_crit_ms: int = 1000
    blocked_warn_ms: int = 5_000
    blocked_crit_ms: int = 60_000
    long_transaction_warn_ms: int = 300_000
    long_transaction_crit_ms: int = 1_800_000
    idle_transaction_warn_ms: int = 60_000
    idle_transaction_crit_ms: int = 600_000
    lock_held_warn_ms: int = 3_600_000
    connections_warn_pct: int = 80
    connections_crit_pct: int = 95
    replication_lag_warn_ms: int = 10_000
    replication_lag_crit_ms: int = 60_000
    expand_warn_ms: int = 7 * 86_400_000  # PGSHIFT_EXPAND_WARN

    @classmethod
    def from_settings(cls, settings: Settings) -> Thresholds:
        return cls(
            latency_warn_ms=settings.health_latency_warn_ms,
            latency_crit_ms=settings.health_latency_crit_ms,
            blocked_warn_ms=settings.health_blocked_warn_ms,
            blocked_crit_ms=settings.health_blocked_crit_ms,
            long_transaction_warn_ms=settings.health_long_transaction_warn_ms,
            long_transaction_crit_ms=settings.health_long_transaction_crit_ms,
            idle_transaction_warn_ms=settings.health_idle_transaction_warn_ms,
            idle_transaction_crit_ms=settings.health_idle_transaction_crit_ms,
            lock_held_warn_ms=settings.health_lock_held_warn_ms,
            connections_warn_pct=settings.health_connections_warn_pct,
            connections_crit_pct=settings.health_connections_crit_pct,
            replication_lag_warn_ms=settings.health_replication_lag_warn_ms,
            replication_lag_crit_ms=settings.health_replication_lag_crit_ms,
            expand_warn_ms=settings.expand.warn_ms,
        )


def _level(value: float, warn: float, crit: float) -> str:
    if value >= crit:
        return CRITICAL
    if value >= warn:
        return WARNING
    return OK


def _dur(ms: float | None) -> str:
    return format_duration_ms(ms)


def _age(ms: float | None) -> str:
    """A long age as a person reads it: 8d 3h, 5h 12m; shorter ones as _dur does."""
    if ms is None or ms < 3_600_000:
        return _dur(ms)
    hours = int(ms // 3_600_000)
    if hours < 48:
        return f"{hours}h {int(ms % 3_600_000 // 60_000)}m"
    return f"{hours // 24}d {hours % 24}h"


def _who(s: SessionInfo) -> str:
    name = s.application_name or "no application_name"
    return f"pid {s.pid} ({name}, {s.state or 'no state'})"


# -- pure rules -------------------------------------------------------------------------------


def check_connection(round_trip_ms: float, connect_ms: float | None, t: Thresholds) -> Check:
    status = _level(round_trip_ms, t.latency_warn_ms, t.latency_crit_ms)
    detail = f"round trip {round_trip_ms:.1f}ms"
    if connect_ms is not None:
        detail += f", connected in {connect_ms:.0f}ms"
    if status != OK:
        limit = t.latency_crit_ms if status == CRITICAL else t.latency_warn_ms
        detail += f" (over PGSHIFT_HEALTH_LATENCY_{status[:4].upper()} {limit}ms)"
    return Check(
        "connection",
        status,
        detail,
        {"round_trip_ms": round(round_trip_ms, 3), "connect_ms": connect_ms},
    )


def check_unreachable(message: str) -> Check:
    return Check("connection", CRITICAL, message, {"reachable": False})


def check_server_version(version_num: int, version_text: str) -> Check:
    major = version_num // 10000
    data = {"server_version_num": version_num, "server_version": version_text, "major": major}
    if major < MIN_WORKING_MAJOR:
        return Check(
            "server_version",
            CRITICAL,
            f"PostgreSQL {version_text} is older than {MIN_WORKING_MAJOR}, which pgshift needs",
            data,
        )
    if major < MIN_SUPPORTED_MAJOR:
        return Check(
            "server_version",
            WARNING,
            f"PostgreSQL {version_text} no longer gets fixes from the PostgreSQL project"
            f" (supported: {MIN_SUPPORTED_MAJOR} and newer)",
            data,
        )
    return Check("server_version", OK, f"PostgreSQL {version_text}", data)


def check_pooler(probe: PoolerProbe) -> Check:
    """A transaction-mode pooler breaks the session lock and SET: critical.

    Several backend pids across autocommit statements, or a session setting that did not
    survive, can only mean transactions are spread over server connections. A startup pid that
    differs from the server's own means something answers in PostgreSQL's place: a session-mode
    pooler works, but an idle transaction-mode pooler looks the same, hence a warning.
    """
    server_pids = sorted(set(probe.server_pids))
    data = {
        "announced_pid": probe.announced_pid,
        "server_pids": server_pids,
        "session_setting_kept": probe.setting_kept,
    }
    if len(server_pids) > 1 or not probe.setting_kept:
        why = (
            f"{len(server_pids)} different server processes answered one connection"
            if len(server_pids) > 1
            else "a session setting was lost between two transactions"
        )
        return Check(
            "pooler",
            CRITICAL,
            f"a transaction-mode pooler is in front of the database ({why}): the migration"
            " lock and SET do not work through it; point pgshift at PostgreSQL directly or at a"
            " session-mode pool",
            data,
        )
    if server_pids and probe.announced_pid != server_pids[0]:
        return Check(
            "pooler",
            WARNING,
            f"a proxy or pooler answers for the server (it announced pid {probe.announced_pid},"
            f" the server runs pid {server_pids[0]}); session state held, so it looks like"
            " session mode, but make sure it is not transaction mode",
            data,
        )
    return Check("pooler", OK, "direct connection to PostgreSQL (no pooler detected)", data)


def check_connections(use: ConnectionUse, t: Thresholds) -> Check:
    pct = 100.0 * use.used / use.available if use.available else 100.0
    status = _level(pct, t.connections_warn_pct, t.connections_crit_pct)
    return Check(
        "connections",
        status,
        f"{use.used} of {use.available} connections in use ({pct:.0f}%;"
        f" max_connections {use.max_connections}, {use.reserved} reserved)",
        {
            "used": use.used,
            "available": use.available,
            "max_connections": use.max_connections,
            "reserved": use.reserved,
            "percent": round(pct, 1),
        },
    )


def _names(versions: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(versions[:limit])
    return shown + (f" and {len(versions) - limit} more" if len(versions) > limit else "")


def check_files(problems: Sequence[Problem]) -> Check:
    """Problems in the migration files: a warning listing them, never a reason to go blind.

    Health is read-only (SPEC 1): a bad file is reported here while every other check still
    runs on what could be read.
    """
    if not problems:
        return Check("migration_files", OK, "every migration file reads cleanly")
    listed = "; ".join(str(p) for p in problems[:3])
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    data = {"count": len(problems), "problems": [str(p) for p in problems]}
    detail = f"{len(problems)} problem(s): {listed}{more}; `pgshift validate` lists them"
    return Check("migration_files", WARNING, detail, data)


def check_pending(states: Sequence[MigrationState]) -> Check:
    pending = [s.version for s in states if s.state in ("pending", "out-of-order")]
    out_of_order = [s.version for s in states if s.state == "out-of-order"]
    applied = sum(1 for s in states if s.applied is not None and not s.half_reverted)
    data = {"count": len(pending), "versions": pending, "out_of_order": out_of_order}
    if not pending:
        return Check("pending_migrations", OK, f"none pending ({applied} applied)", data)
    detail = f"{len(pending)} pending: {_names(pending)}; run `pgshift up`"
    if out_of_order:
        detail += f" ({len(out_of_order)} older than the newest applied one)"
    return Check("pending_migrations", WARNING, detail, data)


def check_failed(
    history: History,
    failures: Mapping[str, Mapping[str, Any]],
    run_in_progress: bool = False,
    revert_failures: Mapping[str, Mapping[str, Any]] | None = None,
) -> Check:
    """Half-applied migrations (progress recorded) need recovery: critical.

    A migration whose last attempt failed inside its transaction left nothing behind: warning,
    the database is consistent but the next `up` meets the same error. While a live run holds
    the migration lock, its progress rows are that run's work under way, not a failure: a
    readiness probe must not page anyone for a long CREATE INDEX CONCURRENTLY.

    A half-reverted migration (its rollback stopped part-way, the applied row still there) is
    critical too, and its hint is the rollback command that finishes it, never `pgshift up`:
    `up` refuses to go forward over it (issue 8). Its error, when the revert failed rather than
    was killed, comes from ``revert_failures`` (the newest `revert_failed` event), and only when
    newer than the progress row, so that an older failed attempt is not shown as this one.
    """
    from pgshift.plan import half_reverted_versions

    half = {} if run_in_progress else {p.version: p for p in history.in_progress}
    reverted = [v for v in half_reverted_versions(history) if v in half]
    items = [
        _failed_item(version, half.get(version), version in reverted, failures, revert_failures)
        for version in sorted(set(history.failed) | set(half))
    ]
    data: dict[str, Any] = {"count": len(items), "migrations": items}
    if not items:
        return _nothing_failed(history, run_in_progress, data)
    critical = any(i["half_applied"] or i["half_reverted"] for i in items)
    return Check(
        "failed_migrations",
        CRITICAL if critical else WARNING,
        "; ".join(_describe_failed(i) for i in items[:3])
        + "; "
        + "; then ".join(_failed_hints(items, reverted)),
        data,
    )


def _failed_item(
    version: str,
    progress: Progress | None,
    is_revert: bool,
    failures: Mapping[str, Mapping[str, Any]],
    revert_failures: Mapping[str, Mapping[str, Any]] | None,
) -> dict[str, Any]:
    """One failed, half-applied or half-reverted migration as the check's data shows it."""
    failure = dict(((revert_failures or {}) if is_revert else failures).get(version, {}))
    if is_revert and progress is not None and _older(failure.get("at"), progress.updated_at):
        failure = {}  # an earlier attempt's error, not this revert's
    return {
        "version": version,
        "half_applied": progress is not None and not is_revert,
        "half_reverted": is_revert,
        "statements_done": progress.statements_done if progress else 0,
        "line": failure.get("line"),
        "statement": failure.get("statement"),
        "sqlstate": failure.get("sqlstate"),
        "message": failure.get("message"),
        "failed_at": failure.get("at"),
    }


def check_backfills(history: History, run_in_progress: bool = False) -> Check:
    """Unfinished backfills (SPEC 14): one a live run is doing is work under way (ok); one that
    stopped (killed, failed, interrupted) waits for a re-run to continue it: warning. Later
    migrations wait for it, but nothing is half-done in the data: each batch is whole."""
    from pgshift.plan import backfill_text

    items: list[dict[str, Any]] = []
    for b in history.backfills:
        running = run_in_progress and b.version not in history.failed
        percent = b.percent
        items.append(
            {
                "version": b.version,
                "action": b.action,
                "percent": round(percent, 1) if percent is not None else None,
                "rows_done": b.keys_done,
                "rows_estimate": b.rows_estimate,
                "batches": b.batches,
                "running": running,
                "text": backfill_text(b),
            }
        )
    data: dict[str, Any] = {
        "count": len(items),
        "running": sum(1 for i in items if i["running"]),
        "stopped": sum(1 for i in items if not i["running"]),
        "backfills": items,
    }
    if not items:
        return Check("backfills", OK, "no backfill under way", data)
    shown = "; ".join(
        f"{i['version']} {i['text']}" + ("" if i["running"] else ", stopped") for i in items[:3]
    )
    if data["stopped"] == 0:
        return Check("backfills", OK, f"{shown} (by the current run)", data)
    again = (
        "pgshift up"
        if all(i["action"] == "apply" for i in items if not i["running"])
        else "pgshift up` or `pgshift rollback safe"
    )
    return Check("backfills", WARNING, f"{shown}; run `{again}` to continue", data)


def check_expanded(states: Sequence[MigrationState], now: datetime, t: Thresholds) -> Check:
    """Migrations in their expand phase (SPEC 15), each since its applied row's `applied_at`
    (when expand finished): one expanded longer than PGSHIFT_EXPAND_WARN is a warning.

    Why a warning at all: while expanded, every write pays the synchronising trigger, the table
    carries a second copy of each changed column, and later migrations of the table are refused
    until `pgshift contract`; a window meant to last one deploy that is forgotten costs all of
    that for good.
    """
    aged: list[tuple[MigrationState, datetime, float]] = []
    for s in states:
        if s.state != "expanded" or s.applied is None:
            continue
        since = s.applied.applied_at
        if since.tzinfo is None:  # the history stores timestamptz; a naive one is UTC
            since = since.replace(tzinfo=UTC)
        aged.append((s, since, max(0.0, (now - since).total_seconds() * 1000)))
    overdue = [s.version for s, _, age_ms in aged if age_ms >= t.expand_warn_ms]
    data: dict[str, Any] = {
        "count": len(aged),
        "overdue": len(overdue),
        "warn_s": t.expand_warn_ms / 1000,
        "migrations": [
            {
                "version": s.version,
                "description": s.description,
                "since": since.isoformat(),
                "age_s": round(age_ms / 1000, 1),
                "overdue": s.version in overdue,
            }
            for s, since, age_ms in aged
        ],
    }
    if not aged:
        return Check("expanded_migrations", OK, "no migration is expanded", data)
    shown = "; ".join(f"{s.version} expanded for {_age(age_ms)}" for s, _, age_ms in aged[:3])
    if len(aged) > 3:
        shown += f" and {len(aged) - 3} more"
    limit = f"PGSHIFT_EXPAND_WARN {_age(t.expand_warn_ms)}"
    if not overdue:
        return Check("expanded_migrations", OK, f"{shown} (under {limit})", data)
    return Check(
        "expanded_migrations",
        WARNING,
        f"{shown}: {_names(overdue)} longer than {limit}; once the old code is gone"
        f" (`pgshift contract --check`), run `pgshift contract {' '.join(overdue)}`",
        data,
    )


def _nothing_failed(history: History, run_in_progress: bool, data: dict[str, Any]) -> Check:
    """OK, naming what the live run is applying or reverting when its rows are all there is."""
    from pgshift.plan import half_reverted_versions

    running = [p.version for p in history.in_progress] if run_in_progress else []
    if not running:
        return Check("failed_migrations", OK, "no failed or half-applied migration", data)
    data["running"] = running
    undoing = set(half_reverted_versions(history))
    doing = [v for v in running if v not in undoing]
    parts = [f"{_names(doing)} being applied"] if doing else []
    if undoing:
        parts.append(f"{_names(sorted(undoing))} being reverted")
    detail = f"no failed migration; {' and '.join(parts)} by the current run"
    return Check("failed_migrations", OK, detail, data)


def _describe_failed(item: Mapping[str, Any]) -> str:
    where = f" at line {item['line']}" if item.get("line") else ""
    text = f"{item['version']}"
    if item["half_reverted"]:
        text += f" half-reverted ({item['statements_done']} statement(s) of its rollback done)"
    elif item["half_applied"]:
        text += f" half-applied ({item['statements_done']} statement(s) done)"
    else:
        text += " failed"
    text += f", stopped{where}"
    if item.get("statement"):
        text += f": {_one_line(str(item['statement']), 80)}"
    if item.get("message"):
        text += f" ({item['message']})"
    return text


def _failed_hints(items: Sequence[Mapping[str, Any]], reverted: Sequence[str]) -> list[str]:
    """What to run, in order: finishing a revert comes before going forward again."""
    from pgshift.plan import finish_revert_command

    hints: list[str] = []
    if reverted:
        hints.append(
            f"run `{finish_revert_command(reverted)}` to finish reverting {_names(reverted)}"
        )
    if any(i["half_applied"] for i in items):
        hints.append("fix the cause and run `pgshift up` to continue")
    elif any(not i["half_reverted"] for i in items):
        hints.append("fix the file and run `pgshift up` again")
    return hints


def _older(at: Any, than: datetime | None) -> bool:
    """True when failure time ``at`` predates ``than``; unknown times never hide a failure."""
    if not isinstance(at, datetime) or than is None:
        return False
    try:
        return at < than
    except TypeError:  # naive against aware: cannot tell
        return False


def _one_line(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def check_drift(states: Sequence[MigrationState]) -> Check:
    drifted = [s.version for s in states if s.state == "drifted"]
    missing = [s.version for s in states if s.state == "missing"]
    data = {"count": len(drifted) + len(missing), "drifted": drifted, "missing": missing}
    if not drifted and not missing:
        return Check("drift", OK, "every applied migration matches its file", data)
    parts = []
    if drifted:
        parts.append(f"{len(drifted)} file(s) changed after they were applied: {_names(drifted)}")
    if missing:
        parts.append(f"{len(missing)} applied migration(s) have no file: {_names(missing)}")
    return Check("drift", CRITICAL, "; ".join(parts) + "; `pgshift up` refuses to run", data)


def check_invalid_indexes(indexes: Sequence[InvalidIndex]) -> Check:
    data = {
        "count": len(indexes),
        "indexes": [
            {"index": f"{i.schema}.{i.name}", "table": i.table, "definition": i.definition}
            for i in indexes
        ],
    }
    if not indexes:
        return Check("invalid_indexes", OK, "no INVALID index", data)
    names = _names([f"{i.schema}.{i.name} on {i.table}" for i in indexes])
    return Check(
        "invalid_indexes",
        WARNING,
        f"{len(indexes)} INVALID index(es), left by failed concurrent builds: {names};"
        " they slow writes and are never used: drop and rebuild them",
        data,
    )


def root_blockers(blocked: Sequence[BlockedSession]) -> list[int]:
    """Pids that block others without waiting themselves: the heads of the lock queues."""
    waiting = {b.session.pid for b in blocked}
    roots = {p for b in blocked for p in b.blocked_by if p not in waiting}
    return sorted(roots)


def blocked_behind(blocked: Sequence[BlockedSession], pid: int) -> list[BlockedSession]:
    """Sessions whose chain of blockers leads to ``pid``, directly or through other waiters."""
    by_pid = {b.session.pid: b for b in blocked}
    result: list[BlockedSession] = []
    for b in blocked:
        seen: set[int] = set()
        stack = list(b.blocked_by)
        while stack:
            p = stack.pop()
            if p == pid:
                result.append(b)
                break
            if p in seen or p not in by_pid:
                continue
            seen.add(p)
            stack.extend(by_pid[p].blocked_by)
    return result


def check_blocked(
    blocked: Sequence[BlockedSession], blockers: Mapping[int, SessionInfo], t: Thresholds
) -> Check:
    items = [
        {
            "pid": b.session.pid,
            "application_name": b.session.application_name,
            "waiting_ms": b.waiting_ms,
            "locktype": b.locktype,
            "relation": b.relation,
            "mode": b.mode,
            "blocked_by": list(b.blocked_by),
            "query": b.session.query,
        }
        for b in blocked
    ]
    roots = root_blockers(blocked)
    data = {
        "count": len(blocked),
        "over_warning": sum(1 for b in blocked if b.waiting_ms >= t.blocked_warn_ms),
        "sessions": items,
        "blockers": [
            {
                "pid": p,
                "application_name": blockers[p].application_name if p in blockers else None,
                "state": blockers[p].state if p in blockers else None,
                "transaction_ms": blockers[p].xact_ms if p in blockers else None,
                "query": blockers[p].query if p in blockers else None,
            }
            for p in roots
        ],
    }
    if not blocked:
        return Check("blocked_sessions", OK, "no session waiting on a lock", data)
    longest = max(blocked, key=lambda b: b.waiting_ms)
    status = _level(longest.waiting_ms, t.blocked_warn_ms, t.blocked_crit_ms)
    on = longest.relation or longest.locktype
    by = ", ".join(_who(blockers[p]) if p in blockers else f"pid {p}" for p in longest.blocked_by)
    detail = (
        f"{len(blocked)} session(s) waiting on locks; longest: {_who(longest.session)} waits"
        f" {_dur(longest.waiting_ms)} for {longest.mode} on {on}, blocked by {by or 'nobody'}"
    )
    if roots and set(roots) != set(longest.blocked_by):
        detail += f"; head(s) of the queue: {', '.join(f'pid {p}' for p in roots)}"
    if status == OK:
        detail += f" (under PGSHIFT_HEALTH_BLOCKED_WARN {_dur(t.blocked_warn_ms)})"
    return Check("blocked_sessions", status, detail, data)


def check_long_transactions(found: Sequence[SessionInfo], t: Thresholds) -> Check:
    """Active transactions past their thresholds, and sessions idle in transaction past theirs."""
    rated: list[tuple[str, SessionInfo, str, int]] = []
    for s in found:
        if s.state.startswith("idle in transaction"):
            age = s.state_ms or 0
            level = _level(age, t.idle_transaction_warn_ms, t.idle_transaction_crit_ms)
            kind = "idle in transaction"
        else:
            age = s.xact_ms or 0
            level = _level(age, t.long_transaction_warn_ms, t.long_transaction_crit_ms)
            kind = "transaction open"
        if level != OK:
            rated.append((level, s, kind, age))
    data = {
        "count": len(rated),
        "sessions": [
            {
                "pid": s.pid,
                "application_name": s.application_name,
                "user": s.user,
                "state": s.state,
                "transaction_ms": s.xact_ms,
                "state_ms": s.state_ms,
                "query": s.query,
                "status": level,
            }
            for level, s, _, _ in rated
        ],
    }
    if not rated:
        return Check("long_transactions", OK, "no long or idle-in-transaction session", data)
    status = worst(r[0] for r in rated)
    level, s, kind, age = max(rated, key=lambda r: (_SEVERITY[r[0]], r[3]))
    detail = (
        f"{len(rated)} long transaction(s); worst: {_who(s)} {kind} for {_dur(age)}"
        f" ({_one_line(s.query, 60) or 'no query'})"
    )
    return Check("long_transactions", status, detail, data)


def check_migration_lock(state: LockState | None, t: Thresholds) -> Check:
    if state is None:
        return Check("migration_lock", OK, "not held", {"held": False})
    h = state.holder
    data = {
        "held": True,
        "pid": h.pid,
        "application_name": h.application_name,
        "state": h.state,
        "held_ms": state.held_ms,
        "idle_ms": h.state_ms,
        "pgshift_workers": state.workers,
    }
    grace = min(t.lock_held_warn_ms, ORPHAN_GRACE_MS)
    idle = h.state == "idle"
    if idle and state.workers == 0 and state.held_ms >= grace:
        return Check(
            "migration_lock",
            CRITICAL,
            f"held for {_dur(state.held_ms)} by {_who(h)} with no pgshift run connected: the run"
            f" that took it is gone; free it with SELECT pg_terminate_backend({h.pid})",
            data,
        )
    detail = f"held by {_who(h)} for {_dur(state.held_ms)}"
    if state.held_ms >= t.lock_held_warn_ms:
        return Check(
            "migration_lock",
            WARNING,
            detail + f", longer than PGSHIFT_HEALTH_LOCK_HELD_WARN {_dur(t.lock_held_warn_ms)}",
            data,
        )
    return Check("migration_lock", OK, detail + " (a run is in progress)", data)


def check_replication(found: Sequence[Replica], t: Thresholds) -> Check:
    data = {
        "count": len(found),
        "replicas": [{"name": r.name, "state": r.state, "lag_ms": r.lag_ms} for r in found],
    }
    if not found:
        return Check("replication", OK, "no replica connected", data)
    lags = [r.lag_ms for r in found if r.lag_ms is not None]
    if not lags:
        return Check("replication", OK, f"{len(found)} replica(s), replay lag not reported", data)
    worst_lag = max(lags)
    data["max_lag_ms"] = worst_lag
    status = _level(worst_lag, t.replication_lag_warn_ms, t.replication_lag_crit_ms)
    return Check(
        "replication",
        status,
        f"{len(found)} replica(s), largest replay lag {_dur(worst_lag)}",
        data,
    )


@dataclass(frozen=True)
class BackupFacts:
    """What the backup folder says about one database's backups; read without backup.py so
    health works before it exists.

    ``of``: the (database, server) the manifests were matched against, as a manifest records
    them; None when the target could not be asked (then nobody can tell whose backups the
    folder holds). ``others``: manifests of other databases or servers in the same folder.
    """

    folder: Path
    count: int
    newest_id: str | None
    newest_at: datetime | None
    unreadable: tuple[str, ...] = ()
    of: tuple[str, str] | None = None
    others: int = 0


def check_backups(facts: BackupFacts, enabled: bool, retention_days: int, now: datetime) -> Check:
    """The newest backup of *this* database: none or too old is a warning; unknown when the
    database could not be asked which one it is (a folder may hold several databases')."""
    data: dict[str, Any] = {
        "enabled": enabled,
        "folder": str(facts.folder),
        "database": facts.of[0] if facts.of else None,
        "server": facts.of[1] if facts.of else None,
        "count": facts.count,
        "others": facts.others,
        "newest_id": facts.newest_id,
        "newest_at": facts.newest_at.isoformat() if facts.newest_at else None,
        "newest_age_s": None,
        "unreadable": list(facts.unreadable),
        "retention_days": retention_days,
    }
    if not enabled:
        return Check(
            "backups",
            OK,
            "backups are disabled (DB_BACKUP_ENABLED=false): `up` and rollbacks take none",
            data,
        )
    if facts.of is None:
        data["count"] = None
        return Check(
            "backups",
            UNKNOWN,
            f"not checked: cannot tell which backups in {facts.folder} are this database's"
            " without reaching it",
            data,
        )
    whose = f"of {facts.of[0]} on {facts.of[1]}"
    if facts.newest_at is None:
        extra = f" ({len(facts.unreadable)} unreadable manifest(s))" if facts.unreadable else ""
        besides = f"; {facts.others} of other databases" if facts.others else ""
        return Check(
            "backups",
            WARNING,
            f"no backup yet {whose} in {facts.folder}{extra}{besides}: run `pgshift backup`",
            data,
        )
    age_s = max(0.0, (now - facts.newest_at).total_seconds())
    data["newest_age_s"] = round(age_s, 1)
    age = _dur(age_s * 1000)
    if age_s > retention_days * 86400:
        return Check(
            "backups",
            WARNING,
            f"newest backup {whose} ({facts.newest_id}) is {age} old, older than"
            f" DB_BACKUP_RETENTION_DAYS ({retention_days} days)",
            data,
        )
    return Check(
        "backups",
        OK,
        f"newest backup {whose} {facts.newest_id} is {age} old ({facts.count} kept)",
        data,
    )


def not_checked(name: str, why: str) -> Check:
    return Check(name, UNKNOWN, f"not checked: {why}")


__all__ = [
    "CHECK_NAMES",
    "CRITICAL",
    "EXIT_CODES",
    "OK",
    "UNKNOWN",
    "WARNING",
    "BackupFacts",
    "Check",
    "HealthReport",
    "Thresholds",
    "blocked_behind",
    "root_blockers",
    "worst",
]
