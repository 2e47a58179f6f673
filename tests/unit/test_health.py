"""The health rules from literal facts: thresholds, aggregation, metrics, backups, no database."""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pgshift.history import AppliedMigration, History, Progress
from pgshift.model import (
    BlockedSession,
    ConnectionUse,
    InvalidIndex,
    LockState,
    PoolerProbe,
    Replica,
    SessionInfo,
)
from pgshift.ops.health import newest_backup
from pgshift.ops.health_rules import (
    CRITICAL,
    OK,
    UNKNOWN,
    WARNING,
    BackupFacts,
    Check,
    HealthReport,
    Thresholds,
    blocked_behind,
    check_backups,
    check_blocked,
    check_connection,
    check_connections,
    check_expanded,
    check_failed,
    check_long_transactions,
    check_migration_lock,
    check_pooler,
    check_replication,
    check_server_version,
    root_blockers,
    worst,
)
from pgshift.serve import parse_address, render_metrics

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
T = Thresholds()


def session(
    pid: int, state: str = "active", xact_ms: int | None = 0, state_ms: int = 0
) -> SessionInfo:
    return SessionInfo(pid, f"app{pid}", "alice", state, f"SELECT {pid}", xact_ms, state_ms)


def waiting(pid: int, ms: int, by: tuple[int, ...], relation: str = "public.t") -> BlockedSession:
    return BlockedSession(session(pid), ms, "relation", relation, "AccessShareLock", by)


def test_aggregate_status_ranks_critical_over_unknown_over_warning() -> None:
    assert worst([]) == OK
    assert worst([OK, WARNING]) == WARNING
    assert worst([WARNING, UNKNOWN]) == UNKNOWN
    assert worst([UNKNOWN, CRITICAL, WARNING]) == CRITICAL
    report = HealthReport((Check("a", OK, ""), Check("b", UNKNOWN, "")), NOW)
    assert (report.status, report.exit_code) == (UNKNOWN, 3)
    assert HealthReport((Check("a", WARNING, ""),), NOW).exit_code == 1
    assert HealthReport((Check("a", CRITICAL, ""),), NOW).exit_code == 2
    assert HealthReport((), NOW).exit_code == 0


def test_json_shape_matches_spec() -> None:
    report = HealthReport((Check("x", WARNING, "why", {"at": NOW}),), NOW)
    data = json.loads(json.dumps(report.to_json()))
    assert data["status"] == "warning"
    assert data["checks"][0] == {
        "name": "x",
        "status": "warning",
        "detail": "why",
        "data": {"at": str(NOW)},
        "duration_ms": 0.0,
    }


@pytest.mark.parametrize(
    ("round_trip", "expected"), [(5.0, OK), (100.0, WARNING), (999.0, WARNING), (1000.0, CRITICAL)]
)
def test_latency_thresholds(round_trip: float, expected: str) -> None:
    assert check_connection(round_trip, 3.0, T).status == expected


@pytest.mark.parametrize(
    ("num", "expected"), [(110005, CRITICAL), (130010, WARNING), (140000, OK), (180001, OK)]
)
def test_server_version_support(num: int, expected: str) -> None:
    assert check_server_version(num, f"{num // 10000}.x").status == expected


def test_pooler_detection() -> None:
    direct = check_pooler(PoolerProbe(42, (42, 42, 42), True))
    assert direct.status == OK
    moving = check_pooler(PoolerProbe(7, (42, 43, 42), True))
    assert moving.status == CRITICAL and "transaction-mode pooler" in moving.detail
    lost = check_pooler(PoolerProbe(42, (42, 42, 42), False))
    assert lost.status == CRITICAL and "session setting was lost" in lost.detail
    proxied = check_pooler(PoolerProbe(99999, (42, 42, 42), True))
    assert proxied.status == WARNING and "announced pid 99999" in proxied.detail


def test_connection_use_against_max_connections() -> None:
    assert check_connections(ConnectionUse(10, 100, 3), T).status == OK
    assert check_connections(ConnectionUse(80, 100, 3), T).status == WARNING
    crit = check_connections(ConnectionUse(93, 100, 3), T)
    assert crit.status == CRITICAL and "93 of 97" in crit.detail


def test_blocked_sessions_name_the_blocker_table_and_wait() -> None:
    blocker = session(10, state="idle in transaction", xact_ms=90_000)
    found = [waiting(20, 6_000, (10,)), waiting(30, 1_000, (20,))]
    check = check_blocked(found, {10: blocker}, T)
    assert check.status == WARNING
    assert "pid 20" in check.detail and "public.t" in check.detail
    assert "blocked by pid 10 (app10, idle in transaction)" in check.detail
    assert check.data["count"] == 2 and check.data["over_warning"] == 1
    assert [b["pid"] for b in check.data["blockers"]] == [10]
    assert check_blocked([waiting(20, 61_000, (10,))], {}, T).status == CRITICAL
    below = check_blocked([waiting(20, 100, (10,))], {}, T)
    assert below.status == OK and "pid 10" in below.detail


def test_lock_queue_is_followed_transitively() -> None:
    found = [waiting(20, 5, (10,)), waiting(30, 5, (20,)), waiting(40, 5, (99,))]
    assert root_blockers(found) == [10, 99]
    assert [b.session.pid for b in blocked_behind(found, 10)] == [20, 30]
    assert blocked_behind(found, 55) == []


def test_long_and_idle_transactions_use_their_own_thresholds() -> None:
    found = [
        session(1, "active", xact_ms=10_000),  # under 5 min
        session(2, "idle in transaction", xact_ms=70_000, state_ms=70_000),  # over 1 min idle
        session(3, "active", xact_ms=2_000_000),  # over 30 min
    ]
    check = check_long_transactions(found, T)
    assert check.status == CRITICAL
    assert [s["pid"] for s in check.data["sessions"]] == [2, 3]
    assert "pid 3" in check.detail
    only_idle = check_long_transactions(found[:2], T)
    assert only_idle.status == WARNING and "idle in transaction" in only_idle.detail
    assert check_long_transactions(found[:1], T).status == OK


def test_migration_lock_free_held_long_and_orphaned() -> None:
    assert check_migration_lock(None, T).status == OK
    busy = LockState(session(5, "idle", state_ms=10), held_ms=20_000, workers=1)
    assert check_migration_lock(busy, T).status == OK
    long = LockState(session(5, "idle"), held_ms=T.lock_held_warn_ms + 1, workers=1)
    assert check_migration_lock(long, T).status == WARNING
    orphan = LockState(session(5, "idle"), held_ms=120_000, workers=0)
    check = check_migration_lock(orphan, T)
    assert check.status == CRITICAL and "pg_terminate_backend(5)" in check.detail
    young = LockState(session(5, "idle"), held_ms=1_000, workers=0)
    assert check_migration_lock(young, T).status == OK


def test_failed_and_half_applied_migrations() -> None:
    assert check_failed(History(), {}).status == OK
    failed = check_failed(
        History(failed=frozenset({"20250101000000"})),
        {"20250101000000": {"line": 8, "statement": "INSERT INTO x", "message": "boom"}},
    )
    assert failed.status == WARNING and "line 8" in failed.detail and "boom" in failed.detail
    half = check_failed(
        History(in_progress=(Progress("20250102000000", "c", "p", 2, "r", NOW),)),
        {"20250102000000": {"line": 9, "statement": "CREATE INDEX CONCURRENTLY i ON t (a)"}},
    )
    assert half.status == CRITICAL
    assert "half-applied (2 statement(s) done)" in half.detail
    assert "CREATE INDEX CONCURRENTLY" in half.detail
    # The same progress row while a live run holds the lock is that run's work, not a failure.
    running = check_failed(
        History(in_progress=(Progress("20250102000000", "c", "p", 2, "r", NOW),)),
        {},
        run_in_progress=True,
    )
    assert running.status == OK
    assert "20250102000000 being applied" in running.detail


def _applied(version: str) -> AppliedMigration:
    return AppliedMigration(version, "m", "c", "rb", NOW, 1, "me", None, "r")


def test_half_reverted_migration_is_critical_and_names_the_rollback_that_finishes_it() -> None:
    v1, v2 = "20250101000000", "20250102000000"
    reverting = Progress(v2, "rb", "p", 1, "r", NOW, action="revert")
    history = History(applied=(_applied(v1), _applied(v2)), in_progress=(reverting,))
    # An old apply failure of the same version must not be shown as this revert's error.
    old_apply = {v2: {"line": 3, "message": "old apply failure", "at": NOW - timedelta(days=1)}}
    check = check_failed(history, old_apply)
    assert check.status == CRITICAL
    assert f"{v2} half-reverted (1 statement(s) of its rollback done)" in check.detail
    assert f"run `pgshift rollback safe` to finish reverting {v2}" in check.detail
    assert "pgshift up" not in check.detail and "old apply failure" not in check.detail
    assert check.data["migrations"][0]["half_reverted"] is True
    assert check.data["migrations"][0]["half_applied"] is False

    # A revert that failed (rather than was killed) shows its statement and error; an older
    # revert failure, from an attempt before this progress row, does not.
    new_fail = {v2: {"line": 4, "statement": "DROP TABLE t2", "message": "boom", "at": NOW}}
    failed = check_failed(history, {}, revert_failures=new_fail)
    assert "stopped at line 4: DROP TABLE t2 (boom)" in failed.detail
    stale = {v2: {**new_fail[v2], "at": NOW - timedelta(seconds=1)}}
    assert "boom" not in check_failed(history, {}, revert_failures=stale).detail

    # The same row while a live run holds the lock is that run reverting it: work under way.
    running = check_failed(history, {}, run_in_progress=True)
    assert running.status == OK
    assert f"{v2} being reverted by the current run" in running.detail


def test_half_reverted_and_half_applied_together_say_what_to_run_first() -> None:
    v1, v2, v3 = "20250101000000", "20250102000000", "20250103000000"
    history = History(
        applied=(_applied(v1), _applied(v2)),
        in_progress=(
            Progress(v2, "rb", "p", 1, "r", NOW, action="revert"),
            Progress(v3, "c", "p", 1, "r", NOW),
        ),
    )
    check = check_failed(history, {})
    assert check.status == CRITICAL
    assert check.detail.endswith(
        f"run `pgshift rollback safe` to finish reverting {v2};"
        " then fix the cause and run `pgshift up` to continue"
    )


def test_replication_lag() -> None:
    assert check_replication([], T).status == OK
    assert check_replication([Replica("r1", "streaming", None)], T).status == OK
    assert check_replication([Replica("r1", "streaming", 15_000)], T).status == WARNING
    assert check_replication([Replica("r1", "streaming", 61_000)], T).status == CRITICAL


ME = ("app", "db.internal:5432")


def _manifest(
    folder: Path, name: str, created: datetime | str, of: tuple[str, str] | None = ME
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    value = created if isinstance(created, str) else created.isoformat()
    data: dict[str, object] = {"id": name, "created_at": value}
    if of is not None:
        data.update(database=of[0], server=of[1])
    (folder / f"{name}.json").write_text(json.dumps(data))


def test_backups_read_manifests_defensively(tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    absent = newest_backup(folder, ME)
    assert absent.count == 0 and absent.newest_at is None
    check = check_backups(absent, True, 30, NOW)
    assert check.status == WARNING and "no backup yet" in check.detail
    assert check_backups(absent, False, 30, NOW).status == OK

    _manifest(folder, "old", NOW - timedelta(days=40))
    _manifest(folder, "new", (NOW - timedelta(hours=2)).isoformat().replace("+00:00", "Z"))
    (folder / "broken.json").write_text("{not json")
    (folder / "nodate.json").write_text("{}")
    facts = newest_backup(folder, ME)
    assert (facts.count, facts.newest_id) == (2, "new")
    assert sorted(facts.unreadable) == ["broken.json", "nodate.json"]
    fresh = check_backups(facts, True, 30, NOW)
    assert fresh.status == OK and fresh.data["newest_age_s"] == 7200.0

    stale = BackupFacts(folder, 1, "old", NOW - timedelta(days=40), of=ME)
    check = check_backups(stale, True, 30, NOW)
    assert check.status == WARNING and "DB_BACKUP_RETENTION_DAYS" in check.detail


def test_backups_of_other_databases_in_the_same_folder_do_not_count(tmp_path: Path) -> None:
    """Issue 17, finding 9: one DB_BACKUP_DIR shared by several databases (or servers)."""
    folder = tmp_path / "backups"
    _manifest(folder, "mine-old", NOW - timedelta(days=40))
    _manifest(folder, "other-db", NOW - timedelta(hours=1), ("billing", ME[1]))
    _manifest(folder, "other-server", NOW - timedelta(hours=1), (ME[0], "replica:5432"))
    facts = newest_backup(folder, ME)
    assert (facts.count, facts.newest_id, facts.others) == (1, "mine-old", 2)
    check = check_backups(facts, True, 30, NOW)
    assert check.status == WARNING and "mine-old" in check.detail  # not the others' fresh one
    assert check.data["database"] == "app" and check.data["others"] == 2

    only_others = newest_backup(folder, ("inventory", ME[1]))
    assert (only_others.count, only_others.others) == (0, 3)
    check = check_backups(only_others, True, 30, NOW)
    assert check.status == WARNING and "no backup yet of inventory" in check.detail
    # A manifest of an older pgshift, which recorded no server, is matched on the name alone.
    _manifest(folder, "legacy", NOW - timedelta(hours=3), (ME[0], ""))
    assert newest_backup(folder, ME).count == 2


def test_backups_are_unknown_when_the_database_cannot_be_asked(tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    _manifest(folder, "fresh", NOW - timedelta(hours=1))
    facts = newest_backup(folder, None)
    assert facts.count == 0 and facts.newest_id is None
    check = check_backups(facts, True, 30, NOW)
    assert check.status == UNKNOWN and "cannot tell which backups" in check.detail
    # Disabled backups are a fact of the settings, known without the database.
    assert check_backups(facts, False, 30, NOW).status == OK


def test_metrics_text_exposes_counts_and_nan_for_unknown() -> None:
    report = HealthReport(
        (
            Check("connection", OK, "", {"round_trip_ms": 2.0}),
            Check("pending_migrations", WARNING, "", {"count": 2}),
            Check("invalid_indexes", WARNING, "", {"count": 1}),
            Check("blocked_sessions", UNKNOWN, "not checked"),
            Check("migration_lock", OK, "not held", {"held": False}),
            Check("backups", WARNING, "", {"newest_age_s": None}),
            Check("expanded_migrations", WARNING, "", {"count": 2, "overdue": 1}),
        ),
        NOW,
    )
    text = render_metrics(report, runs=4)
    lines = dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    assert lines["pgshift_health_status"] == "3"
    assert lines['pgshift_health_check_status{check="pending_migrations"}'] == "1"
    assert lines["pgshift_migrations_pending"] == "2"
    assert lines["pgshift_migrations_expanded"] == "2"
    assert lines["pgshift_migrations_expanded_overdue"] == "1"
    assert lines["pgshift_invalid_indexes"] == "1"
    assert lines["pgshift_blocked_sessions"] == "NaN"
    assert lines["pgshift_last_backup_age_seconds"] == "NaN"
    assert lines["pgshift_migration_lock_held_seconds"] == "0"
    assert lines["pgshift_health_runs_total"] == "4"
    assert math.isclose(float(lines["pgshift_database_round_trip_seconds"]), 0.002)
    assert "# TYPE pgshift_health_runs_total counter" in text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("9187", ("127.0.0.1", 9187)),
        (":9000", ("127.0.0.1", 9000)),
        ("0.0.0.0:80", ("0.0.0.0", 80)),  # noqa: S104 - asked for explicitly
        ("[::1]:9187", ("::1", 9187)),
        ("localhost:0", ("localhost", 0)),
    ],
)
def test_serve_address_defaults_to_loopback(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


def test_bad_serve_address_is_a_usage_error() -> None:
    from pgshift.errors import UsageError

    with pytest.raises(UsageError, match="port must be a number"):
        parse_address("127.0.0.1:http")


def test_endpoint_runs_checks_at_most_once_per_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fake clock: ten scrapes inside one interval share one run; the next interval reruns."""
    from pgshift import serve
    from pgshift.config import load_settings

    settings = load_settings({"database_url": "postgresql://nobody@127.0.0.1:1/x"}, env={})
    runs: list[float] = []

    def fake_run(self: serve.HealthEndpoint) -> HealthReport:
        runs.append(time.monotonic())
        return HealthReport((Check("connection", OK, "fine"),), NOW)

    monkeypatch.setattr(serve.HealthEndpoint, "_run", fake_run)
    now = [1000.0]
    endpoint = serve.HealthEndpoint(settings, settings.database_url, clock=lambda: now[0])
    try:
        for _ in range(10):
            endpoint.report()
        assert len(runs) == 1 and endpoint.runs == 1
        now[0] += settings.health_check_interval_ms / 1000 - 0.001
        endpoint.report()
        assert endpoint.runs == 1
        now[0] += 0.001
        endpoint.report()
        assert endpoint.runs == 2
    finally:
        endpoint.close()


def test_invalid_indexes_are_named_with_their_table() -> None:
    from pgshift.ops.health_rules import check_invalid_indexes

    assert check_invalid_indexes([]).status == OK
    check = check_invalid_indexes(
        [InvalidIndex("public", "users_email_key", "users", "CREATE UNIQUE INDEX ...")]
    )
    assert check.status == WARNING and "public.users_email_key on users" in check.detail


def test_monitor_cancels_only_when_more_than_n_wait_longer_than_t_behind_the_runner() -> None:
    from pgshift.ops.monitor import MonitorPolicy, judge

    policy = MonitorPolicy(abort_blocked_sessions=1, abort_blocked_ms=1_000)
    queue = [waiting(20, 2_000, (10,)), waiting(30, 1_500, (20,)), waiting(40, 5_000, (77,))]
    verdict = judge(queue, 10, policy)
    assert [b.session.pid for b in verdict.behind] == [20, 30]
    assert verdict.cancel  # two behind the runner (one through the queue), both over 1 s
    assert not judge(queue[:1], 10, policy).cancel  # one is not more than one
    assert not judge(queue, 10, MonitorPolicy(abort_blocked_sessions=0)).cancel  # disabled
    assert not judge([waiting(20, 500, (10,)), waiting(30, 500, (10,))], 10, policy).cancel


def test_failed_check_details_word_for_word() -> None:
    v1, v2, v3, v4 = "20250101000000", "20250102000000", "20250103000000", "20250104000000"
    assert check_failed(History(), {}).detail == "no failed or half-applied migration"
    history = History(
        applied=(_applied(v1),),
        failed=frozenset({v2, v3, v4}),
        in_progress=(Progress(v4, "c", "p", 3, "r", NOW),),
    )
    failures: dict[str, dict[str, Any]] = {
        v2: {"line": 2, "statement": "SELECT\n  1", "message": "boom", "sqlstate": "XX000"},
        v4: {"message": "late"},
    }
    check = check_failed(history, failures)
    assert check.status == CRITICAL
    assert check.detail == (
        f"{v2} failed, stopped at line 2: SELECT 1 (boom); {v3} failed, stopped;"
        f" {v4} half-applied (3 statement(s) done), stopped (late);"
        " fix the cause and run `pgshift up` to continue"
    )
    assert check.data["migrations"][0]["sqlstate"] == "XX000"
    only_failed = check_failed(History(failed=frozenset({v2})), {})
    assert only_failed.detail == f"{v2} failed, stopped; fix the file and run `pgshift up` again"
    both = History(
        applied=(_applied(v1),),
        in_progress=(
            Progress(v1, "rb", "p", 1, "r", NOW, action="revert"),
            Progress(v2, "c", "p", 1, "r", NOW),
        ),
    )
    running = check_failed(both, {}, run_in_progress=True)
    assert running.detail == (
        f"no failed migration; {v2} being applied and {v1} being reverted by the current run"
    )
    assert running.data["running"] == [v1, v2]


def _state(version: str, state: str, applied_at: datetime) -> Any:
    from pgshift.plan import MigrationState

    row = AppliedMigration(version, "rename", "c", None, applied_at, 1, "me", None, "r")
    return MigrationState(version, "rename", state, None, row)


def test_expanded_migrations_warn_past_pgshift_expand_warn_from_when_expand_finished() -> None:
    """The age of an expanded migration is its applied row's applied_at (expand's end); the
    warning names the overdue ones and the command that ends them; 7 days by default."""
    assert T.expand_warn_ms == 7 * 86_400_000
    none = check_expanded([_state("20250101000000", "applied", NOW - timedelta(days=30))], NOW, T)
    assert none.status == OK and none.data["count"] == 0
    assert none.detail == "no migration is expanded"
    young = _state("20250102000000", "expanded", NOW - timedelta(days=6, hours=23))
    fresh = check_expanded([young], NOW, T)
    assert fresh.status == OK
    assert fresh.detail == ("20250102000000 expanded for 6d 23h (under PGSHIFT_EXPAND_WARN 7d 0h)")
    old = _state("20250103000000", "expanded", NOW - timedelta(days=7))
    late = check_expanded([young, old], NOW, T)
    assert late.status == WARNING
    assert late.detail == (
        "20250102000000 expanded for 6d 23h; 20250103000000 expanded for 7d 0h:"
        " 20250103000000 longer than PGSHIFT_EXPAND_WARN 7d 0h; once the old code is gone"
        " (`pgshift contract --check`), run `pgshift contract 20250103000000`"
    )
    assert late.data["count"] == 2 and late.data["overdue"] == 1
    assert late.data["migrations"][1] == {
        "version": "20250103000000",
        "description": "rename",
        "since": (NOW - timedelta(days=7)).isoformat(),
        "age_s": 7 * 86400.0,
        "overdue": True,
    }
    short = Thresholds(expand_warn_ms=3_600_000)
    assert check_expanded([young], NOW, short).status == WARNING
