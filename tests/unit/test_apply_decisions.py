"""The runner's decisions on the in-memory store: resume, retry budget, failure records, re-check.

No database: tests/plugins/memory.py scripts the server's answers. Each test states what the
runner must decide; the same behaviours are proven on real PostgreSQL in tests/integration.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from pgshift import events as ev
from pgshift.durations import format_duration_ms
from pgshift.errors import DriftError, HalfApplied, MigrationFailed, MigrationTimeout, PlanChanged
from pgshift.execution import ServerError
from pgshift.model import Header, Migration, RollbackScript
from pgshift.ops.apply import Runner, RunOptions
from pgshift.plan import Plan, plan_pending, plan_revert
from pgshift.source.sql import split_statements
from tests.plugins.memory import FakeClock, Killed, MemoryTarget

V1, V2 = "20250101000000", "20250102000000"
LOCKED = ServerError("55P03", "canceling statement due to lock timeout")
DEADLOCK = ServerError("40P01", "deadlock detected")
BROKEN = ServerError("42P01", 'relation "nowhere" does not exist', offset=14)


def migration(
    version: str, sql: str, *, transaction: bool = True, rollback: str | None = None
) -> Migration:
    path = Path(f"/project/migrations/{version}_m.sql")
    statements, problems = split_statements(sql, str(path))
    assert not problems
    script = None
    if rollback is not None:
        back, _ = split_statements(rollback, str(path))
        script = RollbackScript(
            path.with_name(f"{version}_m_rollback.sql"), rollback, f"rb-{version}", Header(), back
        )
    return Migration(
        version, "m", path, sql, f"sum-{version}", Header(transaction=transaction), statements,
        script,
    )  # fmt: skip


def runner(
    target: MemoryTarget, clock: FakeClock | None = None, options: RunOptions | None = None
) -> Runner:
    clock = clock or FakeClock()
    return Runner(target, options or RunOptions(), sleep=clock.sleep, clock=clock)


def up(target: MemoryTarget, *migrations: Migration) -> Plan:
    plan = plan_pending(migrations, target.read_history())
    runner(target).run(plan)
    return plan


MIXED = (
    "INSERT INTO audit VALUES ('a');\n"
    "CREATE INDEX CONCURRENTLY items_idx ON items (id);\n"
    "INSERT INTO audit VALUES ('b');\n"
)


def test_a_half_applied_step_resumes_after_its_last_committed_statement() -> None:
    target = MemoryTarget()
    m = migration(V1, MIXED)
    target.scripted.answer("INSERT INTO audit VALUES ('b')", BROKEN)
    with pytest.raises(HalfApplied) as stopped:
        up(target, m)
    assert stopped.value.exit_code == 6
    assert target.read_history().progress_of(V1, "apply") is not None
    up(target, m)
    assert [a.version for a in target.read_history().applied] == [V1]
    assert target.scripted.committed == [
        "INSERT INTO audit VALUES ('a')",
        "CREATE INDEX CONCURRENTLY items_idx ON items (id)",
        "INSERT INTO audit VALUES ('b')",
    ]  # each once: the resume did not run the first two again
    assert target.read_history().in_progress == ()


def test_a_concurrent_build_that_finished_before_a_kill_is_not_built_again() -> None:
    target = MemoryTarget()
    m = migration(V1, MIXED)
    target.scripted.kill_after = "CREATE INDEX CONCURRENTLY items_idx ON items (id)"
    with pytest.raises(Killed):
        up(target, m)
    assert target.read_history().progress_of(V1).statements_done == 1  # type: ignore[union-attr]
    up(target, m)
    builds = [s for s in target.scripted.ran if s.startswith("CREATE INDEX")]
    assert builds == ["CREATE INDEX CONCURRENTLY items_idx ON items (id)"]
    assert [a.version for a in target.read_history().applied] == [V1]


def test_an_invalid_index_left_by_a_failed_build_is_dropped_and_rebuilt() -> None:
    target = MemoryTarget()
    m = migration(V1, MIXED)
    target.scripted.answer("CREATE INDEX CONCURRENTLY items_idx ON items (id)", BROKEN)
    with pytest.raises(HalfApplied):
        up(target, m)
    from pgshift.execution import IndexFacts

    target.scripted.indexes["items_idx"] = IndexFacts("public", "items_idx", False)  # left over
    up(target, m)
    assert target.scripted.dropped == ["items_idx"]
    assert target.events("invalid_index_rebuilt") == [{"index": "public.items_idx"}]
    assert target.scripted.indexes["items_idx"].valid


def test_a_resume_refuses_when_what_already_ran_was_edited() -> None:
    target = MemoryTarget()
    target.scripted.answer("INSERT INTO audit VALUES ('b')", BROKEN)
    with pytest.raises(HalfApplied):
        up(target, migration(V1, MIXED))
    edited = migration(V1, MIXED.replace("'a'", "'A'"))
    with pytest.raises(DriftError):
        up(target, edited)


def test_lock_timeouts_are_retried_within_the_budget_then_reported_once() -> None:
    target = MemoryTarget()
    m = migration(V1, "ALTER TABLE busy ADD COLUMN c int;")
    target.scripted.answer("ALTER TABLE busy ADD COLUMN c int", *[LOCKED] * 50)
    clock = FakeClock()
    with pytest.raises(MigrationTimeout) as exhausted:
        options = RunOptions(lock_timeout_ms=100, lock_retry_total_ms=5000)
        runner(target, clock, options).run(plan_pending([m], target.read_history()))
    assert exhausted.value.exit_code == 5
    attempts = target.scripted.ran.count("ALTER TABLE busy ADD COLUMN c int")
    retries = target.events("lock_retry")
    assert len(retries) == attempts - 1 == len(clock.sleeps)
    # The pauses stayed within PGSHIFT_LOCK_RETRY_TOTAL (in whole milliseconds: a float sum
    # of pauses that fill it exactly can come to 5.000000000000001).
    assert round(sum(clock.sleeps) * 1000) <= 5000
    # ... and used it: no pause of two lock timeouts was left unused (issue 17: "within
    # 4000 ms" was printed after 2.9 s, when the next pause would have passed the deadline).
    assert sum(clock.sleeps) > 5.0 - 0.2
    assert "within 5000 ms (" in exhausted.value.message
    assert f"each, gave up after {format_duration_ms(int(sum(clock.sleeps) * 1000))})" in (
        exhausted.value.message
    )
    assert all(s >= 0.2 for s in clock.sleeps)  # each at least two lock timeouts
    assert [r["attempt"] for r in retries] == list(range(1, attempts))
    (failed,) = target.events("migration_failed")
    assert failed["message"].startswith("retries exhausted")
    error = exhausted.value
    assert (error.file, error.line, error.column, error.statement_index) == (str(m.path), 1, 1, 0)
    assert error.reason.startswith("could not take the locks it needs within 5000 ms")
    assert target.read_history().failed == frozenset({V1})


def test_a_deadlock_is_retried_and_the_retry_applies() -> None:
    target = MemoryTarget()
    m = migration(V1, "UPDATE a SET x = 1;\nUPDATE b SET y = 2;")
    target.scripted.answer("UPDATE b SET y = 2", DEADLOCK)
    up(target, m)
    assert [a.version for a in target.read_history().applied] == [V1]
    (retry,) = target.events("lock_retry")
    assert retry["sqlstate"] == "40P01" and retry["statement_index"] == 1
    assert target.scripted.committed == ["UPDATE a SET x = 1", "UPDATE b SET y = 2"]


def test_a_failure_is_recorded_with_its_statement_and_line_and_nothing_is_left() -> None:
    target = MemoryTarget()
    m = migration(V1, "CREATE TABLE t (id int);\nSELECT * FROM\n  nowhere;")
    target.scripted.answer("SELECT * FROM\n  nowhere", BROKEN)
    with pytest.raises(MigrationFailed) as failed:
        up(target, m)
    assert failed.value.exit_code == 1
    assert f"{m.path}:3: relation" in failed.value.message  # line 2, refined by the offset
    error = failed.value  # the same facts as fields, for a caller that must not parse text
    assert (error.file, error.line, error.column, error.statement_index) == (str(m.path), 3, 1, 1)
    assert error.reason == 'relation "nowhere" does not exist (SQLSTATE 42P01)'
    (detail,) = target.events("migration_failed")
    assert detail["statement_index"] == 1 and detail["line"] == 3
    assert target.scripted.committed == []
    history = target.read_history()
    assert history.applied == () and history.in_progress == ()
    assert history.failed == frozenset({V1})
    assert target.events("run_failed")[0]["exit_code"] == 1


def test_the_error_column_is_the_servers_position_in_the_file() -> None:
    """A statement that starts mid-line: the column counts from the line's start, not the
    statement's; without a position from the server, the statement's own start."""
    target = MemoryTarget()
    m = migration(V1, "SELECT 1; SELECT nowhere;")
    target.scripted.answer("SELECT nowhere", ServerError("42703", "no", offset=7))
    with pytest.raises(MigrationFailed) as failed:
        up(target, m)
    error = failed.value
    assert (error.line, error.column, error.statement_index) == (1, 18, 1)
    target.scripted.answer("SELECT nowhere", ServerError("42703", "no"))
    with pytest.raises(MigrationFailed) as failed:
        up(target, m)
    assert (failed.value.line, failed.value.column) == (1, 11)


def test_a_run_out_of_time_names_its_file_and_no_statement() -> None:
    target = MemoryTarget()
    m = migration(V1, "ALTER TABLE busy ADD COLUMN c int;")
    target.scripted.answer("ALTER TABLE busy ADD COLUMN c int", *[LOCKED] * 50)
    options = RunOptions(statement_timeout_ms=1000, lock_timeout_ms=100)
    with pytest.raises(MigrationTimeout) as late:
        runner(target, FakeClock(), options).run(plan_pending([m], target.read_history()))
    error = late.value
    assert (error.file, error.line, error.column, error.statement_index) == (
        str(m.path), None, None, None,
    )  # fmt: skip
    assert error.reason == "took longer than its statement timeout of 1000 ms"


def test_a_clean_failure_of_a_mixed_step_forgets_the_progress_row_its_start_left() -> None:
    target = MemoryTarget()
    m = migration(V1, MIXED)
    target.scripted.answer("INSERT INTO audit VALUES ('a')", BROKEN)
    with pytest.raises(MigrationFailed) as failed:
        up(target, m)
    assert not isinstance(failed.value, HalfApplied)
    assert target.read_history().in_progress == ()


def test_steps_another_run_finished_meanwhile_are_skipped() -> None:
    target = MemoryTarget()
    one, two = migration(V1, "SELECT 1;"), migration(V2, "SELECT 2;")
    plan = plan_pending([one, two], target.read_history())
    up(target, one)  # another run applied V1 after the plan was made
    result = runner(target).run(plan)
    assert [(s.version, s.status) for s in result.steps] == [(V1, "skipped"), (V2, "applied")]
    assert target.scripted.ran == ["SELECT 1", "SELECT 2"]


def test_a_plan_the_database_moved_away_from_is_refused_before_anything_runs() -> None:
    target = MemoryTarget()
    one, two = migration(V1, "SELECT 1;", rollback="SELECT 0;"), migration(V2, "SELECT 2;")
    up(target, one)
    plan = plan_pending([one, two], target.read_history())
    assert plan.versions == (V2,)
    runner(target).run(plan_revert([one, two], target.read_history(), [V1]))  # meanwhile
    ran_before = list(target.scripted.ran)
    with pytest.raises(PlanChanged) as refused:
        runner(target).run(plan)
    assert refused.value.exit_code == 3
    assert f"{V1}_m: now needs to apply, not planned" in refused.value.message
    assert target.scripted.ran == ran_before  # nothing ran
    assert target.lock.held is False


def test_a_plan_overtaken_by_progress_goes_on_from_there() -> None:
    """An orphaned session of an earlier run committed more statements after the plan was made:
    the run resumes after them instead of refusing (a retried deploy must not fail at random)."""
    target = MemoryTarget()
    m = migration(V1, MIXED)
    target.scripted.answer("CREATE INDEX CONCURRENTLY items_idx ON items (id)", BROKEN)
    with pytest.raises(HalfApplied):
        up(target, m)
    plan = plan_pending([m], target.read_history())  # resume after statement 1
    target.scripted.answer("INSERT INTO audit VALUES ('b')", BROKEN)
    with pytest.raises(HalfApplied):
        up(target, m)  # another run got to statement 2 meanwhile
    seen: list[object] = []
    result = Runner(target, RunOptions(), seen.append, sleep=FakeClock().sleep).run(plan)
    assert [(s.version, s.status) for s in result.steps] == [(V1, "applied")]
    assert target.scripted.committed == [
        "INSERT INTO audit VALUES ('a')",
        "CREATE INDEX CONCURRENTLY items_idx ON items (id)",
        "INSERT INTO audit VALUES ('b')",
    ]  # each exactly once: the index is not built a second time
    assert any(isinstance(e, ev.PlanOvertaken) and "statement 2" in e.detail for e in seen)
    assert target.events("plan_overtaken")


def test_a_plan_whose_resume_point_went_back_is_refused() -> None:
    target = MemoryTarget()
    m = migration(V1, MIXED)
    target.scripted.answer("INSERT INTO audit VALUES ('b')", BROKEN)
    with pytest.raises(HalfApplied):
        up(target, m)
    plan = plan_pending([m], target.read_history())  # resume after statement 2
    target.store.clear_progress(None, V1)  # a hand repair: the row is gone
    ran_before = list(target.scripted.ran)
    with pytest.raises(PlanChanged) as refused:
        runner(target).run(plan)
    assert "back from statement 2 to 0" in refused.value.message
    assert target.scripted.ran == ran_before


def _orphan_moves_progress(target: MemoryTarget, version: str, done: int) -> None:
    """What an earlier run's orphaned session does while this run holds the lock."""
    current = target.read_history().progress_of(version)
    assert current is not None
    target.store.save_progress(None, replace(current, statements_done=done, run_id="orphan"))


def test_a_progress_write_moves_only_from_where_the_run_left_it() -> None:
    """Compare-and-set: progress moved under the run's feet refuses the chunk's transaction."""
    target = MemoryTarget()
    m = migration(V1, MIXED, transaction=False)
    target.scripted.on_send = lambda sql: (
        _orphan_moves_progress(target, V1, 2) if sql.startswith("CREATE INDEX") else None
    )
    with pytest.raises(PlanChanged) as moved:
        up(target, m)
    assert moved.value.exit_code == 3
    assert "not where this run left it" in moved.value.message
    progress = target.read_history().progress_of(V1)
    assert progress is not None and progress.run_id == "orphan"  # the run wrote nothing over it
    assert target.read_history().applied == ()


def test_the_applied_row_is_refused_when_progress_moved() -> None:
    """The last transaction's applied row checks the progress too: its statements roll back."""
    target = MemoryTarget()
    m = migration(V1, MIXED)
    target.scripted.on_send = lambda sql: (
        _orphan_moves_progress(target, V1, 3) if sql == "INSERT INTO audit VALUES ('b')" else None
    )
    with pytest.raises(PlanChanged):
        up(target, m)
    assert "INSERT INTO audit VALUES ('b')" not in target.scripted.committed
    assert target.read_history().applied == ()


def test_a_revert_needs_something_to_revert() -> None:
    target = MemoryTarget()
    m = migration(V1, "CREATE TABLE t (id int);", rollback="DROP TABLE t;")
    up(target, m)
    plan = plan_revert([m], target.read_history(), (V1,))
    target.scripted.on_send = lambda sql: (
        target.store.record_reverted(None, V1, "orphan") if sql == "DROP TABLE t" else None
    )
    with pytest.raises(PlanChanged):
        runner(target).run(plan)
    assert "DROP TABLE t" not in target.scripted.committed


def test_a_failure_carries_the_steps_done_so_far() -> None:
    target = MemoryTarget()
    one, two = migration(V1, "SELECT 1;"), migration(V2, "SELECT broken;")
    target.scripted.answer("SELECT broken", BROKEN)
    with pytest.raises(MigrationFailed) as failed:
        up(target, one, two)
    partial = failed.value.result
    assert partial is not None
    assert [(s.version, s.status) for s in partial.steps] == [
        (V1, "applied"),
        (V2, "failed"),
    ]
