"""The health report: facts read over the Target's bounded probe sessions, judged by the rules.

Why two halves: the rules (ops/health_rules.py: what is a warning, what pages someone) are plain
functions of frozen facts, unit-tested from literals; the gathering here asks the database and
never writes, never takes the migration lock and bounds every query (db/probe.py), so it is safe
in a readiness probe while a migration runs. The queries of other sessions are shown with their
constants masked (source/normalize.py) unless the caller asks for them in full.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pgshift.errors import PgshiftError, Problem, QueryFailed
from pgshift.ops.health_rules import (
    CHECK_NAMES,
    UNKNOWN,
    BackupFacts,
    Check,
    HealthReport,
    Thresholds,
    check_backfills,
    check_backups,
    check_blocked,
    check_connection,
    check_connections,
    check_drift,
    check_expanded,
    check_failed,
    check_files,
    check_invalid_indexes,
    check_long_transactions,
    check_migration_lock,
    check_pending,
    check_pooler,
    check_replication,
    check_server_version,
    check_unreachable,
    not_checked,
)

if TYPE_CHECKING:
    from pgshift.config import Settings
    from pgshift.db.probe import Probe
    from pgshift.db.target import Target
    from pgshift.history import History
    from pgshift.model import Migration, SessionInfo
    from pgshift.plan import MigrationState

#: How long a health run waits for its own connection.
CONNECT_TIMEOUT_S = 5
#: How much of another session's query a report shows.
QUERY_CHARS = 300

ProbeSource = Callable[[], AbstractContextManager["Probe"]]


def examine(
    settings: Settings,
    target: Target | PgshiftError,
    *,
    migrations: Sequence[Migration] | PgshiftError,
    problems: Sequence[Problem] = (),
    show_queries: bool = False,
) -> HealthReport:
    """The health report of ``target`` (or the error that stopped naming one: then the
    `connection` check is critical with its message, and every database check unknown).

    ``show_queries``: other sessions' queries in full; by default their constants are masked.
    """

    def probe() -> AbstractContextManager[Probe]:
        if isinstance(target, PgshiftError):
            raise target
        return target.probe(connect_timeout_s=CONNECT_TIMEOUT_S)

    url = None if isinstance(target, PgshiftError) else target.url
    return run_checks(
        settings,
        probe,
        migrations=migrations,
        url=url,
        problems=problems,
        show_queries=show_queries,
    )


def unknown_report(why: str) -> HealthReport:
    """Every check unknown for one reason (nothing to check): exit 3, the monitoring convention."""
    checks = [Check("connection", UNKNOWN, why, {"reachable": None})]
    checks.extend(not_checked(name, "no database") for name in CHECK_NAMES if name != "connection")
    return HealthReport(tuple(checks), datetime.now(UTC))


def newest_backup(folder: Path, of: tuple[str, str] | None = None) -> BackupFacts:
    """The newest backup of the database ``of`` (database name, server label, as a manifest
    records them) by its manifest's `created_at`, tolerating anything odd in the folder.

    Manifests of other databases or servers are counted apart (``others``); with ``of`` None
    (the target could not be asked) no manifest is anyone's, and the check says so.
    """
    newest: tuple[datetime, str] | None = None
    count = others = 0
    unreadable: list[str] = []
    try:
        manifests = sorted(folder.glob("*.json")) if folder.is_dir() else []
    except OSError:
        manifests = []
    for path in manifests:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            created = datetime.fromisoformat(str(data["created_at"]).replace("Z", "+00:00"))
        except (OSError, ValueError, KeyError, TypeError):
            unreadable.append(path.name)
            continue
        if of is None or not _manifest_of(data, of):
            others += of is not None
            continue
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        count += 1
        backup_id = str(data.get("id") or path.stem)
        if newest is None or created > newest[0]:
            newest = (created, backup_id)
    return BackupFacts(
        folder,
        count,
        newest[1] if newest else None,
        newest[0] if newest else None,
        tuple(unreadable),
        of,
        others,
    )


def _manifest_of(data: dict[str, object], of: tuple[str, str]) -> bool:
    """Whether a manifest is a backup of database ``of`` (a manifest of an older pgshift that
    recorded no server matches on the database name alone)."""
    server = data.get("server")
    return data.get("database") == of[0] and (not server or server == of[1])


# -- gathering --------------------------------------------------------------------------------


def run_checks(
    settings: Settings,
    probe: ProbeSource,
    *,
    migrations: Sequence[Migration] | PgshiftError,
    url: str | None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    problems: Sequence[Problem] = (),
    show_queries: bool = False,
) -> HealthReport:
    """Every check, each on its own statement(s), so one failing query makes one check unknown.

    ``probe`` yields a bounded probe session (a fresh one, or one from the endpoint's pool);
    opening it failing is the `connection` check's critical, and every database check is then
    unknown. ``migrations`` is the project's files, or the error reading them.
    """
    from pgshift.db.connect import redact

    t = Thresholds.from_settings(settings)
    checks: list[Check] = []
    timed = _Timer(checks)
    started = time.perf_counter()
    identity: tuple[str, str] | None = None
    try:
        with probe() as session:
            connect_ms = (time.perf_counter() - started) * 1000
            reader = _DatabaseChecks(
                session, settings, t, migrations, connect_ms, show_queries, now
            )
            for name, body in reader.in_order():
                timed(name, body)
            with contextlib.suppress(QueryFailed):
                identity = session.backup_identity()
    except PgshiftError as exc:
        checks.extend(_unreached(checks, redact(exc.message, url)))
    if not isinstance(migrations, PgshiftError):
        timed("migration_files", lambda: check_files(problems))
    timed(
        "backups",
        lambda: check_backups(
            newest_backup(settings.backup_dir, identity),
            settings.backup_enabled,
            settings.backup_retention_days,
            now(),
        ),
    )
    order = {name: i for i, name in enumerate(CHECK_NAMES)}
    checks.sort(key=lambda c: order.get(c.name, len(order)))
    return HealthReport(tuple(checks), now())


class _Timer:
    """Runs one check, records how long it took, and turns a failed query into unknown."""

    def __init__(self, checks: list[Check]) -> None:
        self._checks = checks

    def __call__(self, name: str, body: Callable[[], Check]) -> None:
        started = time.perf_counter()
        try:
            result = body()
        except QueryFailed as exc:  # already redacted by db/
            first = exc.message.splitlines()[0] if exc.message else ""
            result = Check(name, UNKNOWN, f"query failed: {first or type(exc).__name__}")
        elapsed = (time.perf_counter() - started) * 1000
        self._checks.append(Check(result.name, result.status, result.detail, result.data, elapsed))


def _unreached(done_checks: Sequence[Check], message: str) -> list[Check]:
    """After the connection was lost (or never made): the database checks not yet done."""
    done = {c.name for c in done_checks}
    out: list[Check] = []
    if not done:
        out.append(check_unreachable(message))
        done.add("connection")
    out.extend(
        not_checked(name, "no connection to the database")
        for name in CHECK_NAMES
        if name not in done and name != "backups"
    )
    return out


def shown_query(query: str, *, full: bool) -> str:
    """Another session's query as a report shows it: constants masked unless ``full``."""
    from pgshift.source.normalize import normalize_query

    return (query if full else normalize_query(query))[:QUERY_CHARS]


class _DatabaseChecks:
    """The checks that read the database, on one probe session; the history is read at most once.

    One method per check, so that ``run_checks`` is only their order and the error handling.
    """

    def __init__(
        self,
        probe: Probe,
        settings: Settings,
        thresholds: Thresholds,
        migrations: Sequence[Migration] | PgshiftError,
        connect_ms: float,
        show_queries: bool = False,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.probe = probe
        self.now = now
        self.schema = settings.schema
        self.t = thresholds
        self.migrations = migrations
        self.connect_ms = connect_ms
        self.show_queries = show_queries
        self._history: History | None = None

    def in_order(self) -> list[tuple[str, Callable[[], Check]]]:
        """(name, check) in the order they run, which is also the order they are reported."""
        return [
            ("connection", self.connectivity),
            ("server_version", self.version),
            ("pooler", self.pooler),
            ("connections", self.connections),
            ("pending_migrations", self.pending),
            ("failed_migrations", self.failed),
            ("drift", self.drift),
            ("invalid_indexes", self.invalid_indexes),
            ("blocked_sessions", self.blocked),
            ("long_transactions", self.long_transactions),
            ("migration_lock", self.migration_lock),
            ("backfills", self.backfills),
            ("expanded_migrations", self.expanded),
            ("replication", self.replication),
        ]

    def _shown(self, session: SessionInfo) -> SessionInfo:
        return replace(session, query=shown_query(session.query, full=self.show_queries))

    def connectivity(self) -> Check:
        return check_connection(self.probe.round_trip_ms(), self.connect_ms, self.t)

    def version(self) -> Check:
        version_num, version = self.probe.server_version()
        return check_server_version(version_num, version)

    def pooler(self) -> Check:
        return check_pooler(self.probe.pooler())

    def connections(self) -> Check:
        return check_connections(self.probe.connection_use(), self.t)

    def _read_history(self) -> History:
        if self._history is None:
            self._history = self.probe.history(self.schema)
        return self._history

    def _from_states(self, name: str, rule: Callable[[Sequence[MigrationState]], Check]) -> Check:
        from pgshift.plan import migration_states

        if isinstance(self.migrations, PgshiftError):
            found = not_checked("", f"cannot read the migration files: {self.migrations.message}")
            return Check(name, found.status, found.detail)
        return rule(migration_states(self.migrations, self._read_history()))

    def pending(self) -> Check:
        return self._from_states("pending_migrations", check_pending)

    def failed(self) -> Check:
        lock = self.probe.migration_lock(self.schema)
        live_run = lock is not None and lock.workers > 0
        failures = self.probe.last_failures(self.schema, "migration_failed")
        reverts = self.probe.last_failures(self.schema, "revert_failed")
        history = self._read_history()
        if not isinstance(self.migrations, PgshiftError):
            # A failed attempt whose file is gone asks nothing of anyone any more; a
            # half-applied one (a progress row) still does, file or not.
            on_disk = {m.version for m in self.migrations}
            history = replace(history, failed=history.failed & on_disk)
        return check_failed(history, failures, run_in_progress=live_run, revert_failures=reverts)

    def drift(self) -> Check:
        return self._from_states("drift", check_drift)

    def invalid_indexes(self) -> Check:
        return check_invalid_indexes(self.probe.invalid_indexes())

    def blocked(self) -> Check:
        found = [replace(b, session=self._shown(b.session)) for b in self.probe.blocked_sessions()]
        pids = sorted({p for b in found for p in b.blocked_by})
        blockers = {pid: self._shown(s) for pid, s in self.probe.sessions(pids).items()}
        return check_blocked(found, blockers, self.t)

    def long_transactions(self) -> Check:
        floor = min(self.t.long_transaction_warn_ms, self.t.idle_transaction_warn_ms)
        found = self.probe.long_transactions(floor)
        return check_long_transactions([self._shown(s) for s in found], self.t)

    def migration_lock(self) -> Check:
        lock = self.probe.migration_lock(self.schema)
        if lock is not None:
            lock = replace(lock, holder=self._shown(lock.holder))
        return check_migration_lock(lock, self.t)

    def backfills(self) -> Check:
        history = self._read_history()
        live_run = False
        if history.backfills:  # only then does it matter who holds the lock
            lock = self.probe.migration_lock(self.schema)
            live_run = lock is not None and lock.workers > 0
        return check_backfills(history, run_in_progress=live_run)

    def expanded(self) -> Check:
        return self._from_states(
            "expanded_migrations", lambda states: check_expanded(states, self.now(), self.t)
        )

    def replication(self) -> Check:
        return check_replication(self.probe.replicas(), self.t)


__all__ = ["examine", "newest_backup", "run_checks", "shown_query", "unknown_report"]
