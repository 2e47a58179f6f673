"""The runner around a `@kind: backfill` step, on the in-memory target: what it records, when
later migrations wait, what a stop says, and that a reverted backfill runs again when applied.

The batches themselves (exactly once, resume, pacing) are db/backfill.py's and ops/backfill.py's,
proven on real servers in tests/integration/test_backfill.py; `pgshift up` end to end in
tests/integration/test_backfill_up.py.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from pgshift import events as ev
from pgshift.errors import HalfApplied, Interrupted, MigrationFailed
from pgshift.model import Header, Migration, RollbackScript
from pgshift.ops.apply import Runner, RunOptions
from pgshift.plan import migration_states, plan_pending, plan_revert
from pgshift.source.sql import split_statements
from tests.plugins.memory import FakeClock, MemoryTarget
from tests.unit.test_apply_decisions import V1, V2

V3 = "20250103000000"
FILL = "UPDATE items SET n = n + 1"
BACKFILL = Header(kind="backfill", lock_timeout_ms=123, statement_timeout_ms=4567)


def _migration(
    version: str,
    sql: str,
    header: Header | None = None,
    rollback: tuple[str, Header] | None = None,
) -> Migration:
    path = Path(f"/project/migrations/{version}_m.sql")
    statements, problems = split_statements(sql, str(path))
    assert not problems
    script = None
    if rollback is not None:
        back, _ = split_statements(rollback[0], str(path))
        rb_path = path.with_name(f"{version}_m_rollback.sql")
        script = RollbackScript(rb_path, rollback[0], f"rb-{version}", rollback[1], back)
    return Migration(
        version, "m", path, sql, f"sum-{version}", header or Header(), statements, script
    )


def _runner(target: MemoryTarget, seen: list[ev.Event] | None = None) -> Runner:
    clock = FakeClock()
    emit = seen.append if seen is not None else ev.ignore
    return Runner(
        target,
        RunOptions(stop_grace_ms=0),
        emit,
        sleep=clock.sleep,
        clock=clock,
        backfills=target.backfills,
    )


def _up(target: MemoryTarget, *migrations: Migration, seen: list[ev.Event] | None = None) -> None:
    _runner(target, seen).run(plan_pending(migrations, target.read_history()))


def _three() -> tuple[Migration, Migration, Migration]:
    return (
        _migration(V1, "CREATE TABLE items (id int, n int);"),
        _migration(V2, FILL + ";", BACKFILL, (FILL.replace("+", "-") + ";", Header())),
        _migration(V3, "CREATE TABLE later (id int);"),
    )


def test_a_backfill_step_runs_its_batches_not_its_statement_and_is_recorded_applied() -> None:
    target = MemoryTarget()
    seen: list[ev.Event] = []
    _up(target, *_three(), seen=seen)
    assert [a.version for a in target.read_history().applied] == [V1, V2, V3]
    # The statement never went to the executor as a statement: the backfill ran it in batches.
    assert FILL not in target.scripted.ran
    [(version, action, options)] = target.backfills.runs
    assert (version, action) == (V2, "apply")
    # The file's @lock-timeout and @statement-timeout bound each batch.
    assert (options.lock_timeout_ms, options.statement_timeout_ms) == (123, 4567)
    names = [type(e).__name__ for e in seen if getattr(e, "version", None) == V2]
    assert names[:2] == ["StepStarted", "BackfillStarted"]
    assert names[-2:] == ["BackfillFinished", "StepApplied"]
    assert target.read_history().backfills == ()  # finished: nothing left to show


def test_a_failed_backfill_is_recorded_failed_and_later_migrations_wait() -> None:
    target = MemoryTarget()
    target.backfills.fail_at = 3
    m1, m2, m3 = _three()
    with pytest.raises(MigrationFailed) as failed:
        _up(target, m1, m2, m3)
    assert failed.value.exit_code == 1
    history = target.read_history()
    assert [a.version for a in history.applied] == [V1]  # V3 waits for the backfill
    assert V2 in history.failed
    [progress] = history.backfills
    assert (progress.version, progress.keys_done, progress.rows_estimate) == (V2, 2, 4)
    [row] = [r for r in migration_states((m1, m2, m3), history) if r.version == V2]
    assert row.state == "failed" and row.backfill == progress
    # The re-run continues after batch 2 and then applies V3.
    _up(target, m1, m2, m3)
    assert [a.version for a in target.read_history().applied] == [V1, V2, V3]
    assert target.backfills.fills[(V2, "apply")].batches == 4


def test_a_stop_between_batches_is_half_applied_and_logged_as_interrupted() -> None:
    target = MemoryTarget()
    m1, m2, m3 = _three()
    r = _runner(target)
    target.backfills.on_batch = lambda n: r.stop.on_signal(signal.SIGTERM) if n == 2 else None
    with pytest.raises(HalfApplied) as stopped:
        r.run(plan_pending((m1, m2, m3), target.read_history()))
    assert stopped.value.exit_code == 6
    assert "backfill stopped after 2 rows" in stopped.value.message
    assert "continues after its last committed batch" in (stopped.value.hint or "")
    [interrupted] = target.events("interrupted")
    assert interrupted["half_applied"] is True and interrupted["signal"] == "SIGTERM"
    assert [a.version for a in target.read_history().applied] == [V1]
    _up(target, m1, m2, m3)
    assert target.backfills.fills[(V2, "apply")].batches == 4
    assert [a.version for a in target.read_history().applied] == [V1, V2, V3]


def test_a_stop_before_the_first_batch_leaves_nothing_half_done() -> None:
    target = MemoryTarget()
    m1, m2, _ = _three()
    clock = FakeClock()

    def emit(event: ev.Event) -> None:  # the signal arrives as V2's step starts
        if isinstance(event, ev.StepStarted) and event.version == V2:
            r.stop.on_signal(signal.SIGINT)

    r = Runner(
        target, RunOptions(stop_grace_ms=0), emit, sleep=clock.sleep, clock=clock,
        backfills=target.backfills,
    )  # fmt: skip
    with pytest.raises(Interrupted) as stopped:
        r.run(plan_pending((m1, m2), target.read_history()))
    assert stopped.value.exit_code == 130
    assert f"{V2} was rolled back, nothing of it remains" in stopped.value.message
    assert [a.version for a in target.read_history().applied] == [V1]
    assert [(v, a) for v, a, _ in target.backfills.runs] == [(V2, "apply")]
    assert target.read_history().backfills == ()


def test_a_reverted_backfill_runs_again_when_applied_again() -> None:
    """The progress row of a finished backfill must not make its second apply a no-op."""
    target = MemoryTarget()
    m1, m2, _ = _three()
    _up(target, m1, m2)
    _runner(target).run(plan_revert((m1, m2), target.read_history(), (V2,)))
    # The revert's stale row is forgotten as the apply starts; the apply's goes with the
    # reverted record, in its transaction.
    assert target.backfills.forgotten == [(V2, "revert")]
    assert (V2, "apply") not in target.backfills.fills
    assert [a.version for a in target.read_history().applied] == [V1]
    _up(target, m1, m2)
    assert [(v, a) for v, a, _ in target.backfills.runs] == [(V2, "apply"), (V2, "apply")]
    assert target.backfills.fills[(V2, "apply")].batches == 4


def test_a_rollback_file_may_be_a_backfill_too() -> None:
    target = MemoryTarget()
    back = (FILL.replace("+", "-") + ";", Header(kind="backfill"))
    m = _migration(V2, FILL + ";", BACKFILL, back)
    _up(target, m)
    _runner(target).run(plan_revert((m,), target.read_history(), (V2,)))
    assert [(v, a) for v, a, _ in target.backfills.runs] == [(V2, "apply"), (V2, "revert")]
    assert target.read_history().applied == ()
    assert FILL.replace("+", "-") not in target.scripted.ran
