"""Which steps `up` sends together in one message, and what the runner decides when one of them
fails: on the in-memory executor, which runs a batch one transaction after the other as the
server does (tests/plugins/memory.py). The server's side of it (one message, one stamp each,
the stop gate) is proven in tests/integration/test_batches.py.
"""

from __future__ import annotations

import pytest

from pgshift.errors import Interrupted, MigrationTimeout
from pgshift.model import Migration
from pgshift.ops.apply import BATCH_MAX_STEPS, BATCH_TARGET_S, RunOptions, _batch_at, _BatchSize
from pgshift.plan import plan_pending
from tests.plugins.memory import FakeClock, MemoryTarget
from tests.unit.test_apply_decisions import LOCKED, migration, runner

VERSIONS = [f"2025010100000{i}" for i in range(1, 9)]


def _migrations(**special: str) -> list[Migration]:
    """One small migration per version; ``special`` maps an index ("m3") to its own SQL."""
    return [
        migration(v, special.get(f"m{i}", f"CREATE TABLE t{i} (id int);"))
        for i, v in enumerate(VERSIONS)
    ]


def test_consecutive_one_transaction_steps_go_together_up_to_the_size() -> None:
    plan = plan_pending(_migrations(), MemoryTarget().read_history())
    assert [s.migration.version for s in _batch_at(plan.steps, 0, 1)] == VERSIONS[:1]
    assert [s.migration.version for s in _batch_at(plan.steps, 2, 4)] == VERSIONS[2:6]
    assert [s.migration.version for s in _batch_at(plan.steps, 6, 64)] == VERSIONS[6:]


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE INDEX CONCURRENTLY i ON t (id);",  # refused in a transaction: runs alone
        "INSERT INTO a VALUES (1);\nVACUUM a;",  # two transactions and a statement alone
    ],
)
def test_a_step_that_is_not_one_transaction_ends_the_batch_and_goes_alone(sql: str) -> None:
    plan = plan_pending(_migrations(m3=sql), MemoryTarget().read_history())
    assert [s.migration.version for s in _batch_at(plan.steps, 1, 8)] == VERSIONS[1:3]
    assert _batch_at(plan.steps, 3, 8) == []


def test_a_file_marked_transaction_false_goes_alone_unless_it_is_one_statement() -> None:
    """Its statements run in a transaction each, with their progress: two are two transactions;
    one is one transaction with its applied row, exactly as a batch runs it."""
    migrations = _migrations()
    two = "CREATE TABLE x (id int);\nCREATE TABLE y (id int);"
    migrations[2] = migration(VERSIONS[2], two, transaction=False)
    migrations[5] = migration(VERSIONS[5], "CREATE TABLE z (id int);", transaction=False)
    plan = plan_pending(migrations, MemoryTarget().read_history())
    assert _batch_at(plan.steps, 2, 8) == []
    assert [s.migration.version for s in _batch_at(plan.steps, 0, 8)] == VERSIONS[:2]
    assert [s.migration.version for s in _batch_at(plan.steps, 3, 8)] == VERSIONS[3:]


def test_the_batch_grows_by_doubling_to_what_fits_the_target_time() -> None:
    size = _BatchSize()
    assert size.steps == 1  # the first step goes alone
    size.took(1, 0.001)
    assert size.steps == 2
    size.took(2, 0.002)
    assert size.steps == 4
    for _ in range(10):
        size.took(size.steps, size.steps * 0.0001)
    assert size.steps == BATCH_MAX_STEPS
    size.took(size.steps, size.steps * 0.01)  # 10 ms each: about 0.1 s worth
    assert size.steps == int(BATCH_TARGET_S / 0.01)
    size.took(size.steps, size.steps * 0.5)  # slow ones: one at a time again
    assert size.steps == 1


def test_a_lock_timeout_inside_a_batch_is_retried_within_the_budget_from_the_batch() -> None:
    target = MemoryTarget()
    migrations = _migrations(m4="ALTER TABLE busy ADD COLUMN c int;")
    target.scripted.answer("ALTER TABLE busy ADD COLUMN c int", *[LOCKED] * 50)
    clock = FakeClock()
    options = RunOptions(lock_timeout_ms=100, lock_retry_total_ms=3000)
    with pytest.raises(MigrationTimeout):
        runner(target, clock, options).run(plan_pending(migrations, target.read_history()))
    assert [a.version for a in target.read_history().applied] == VERSIONS[:4]
    assert round(sum(clock.sleeps) * 1000) <= 3000  # the batch's attempt counted in the budget
    retries = target.events("lock_retry")
    attempts = target.scripted.ran.count("ALTER TABLE busy ADD COLUMN c int")
    assert len(retries) == attempts - 1 and {r["attempt"] for r in retries} >= {1}
    assert not any("t5" in sql for sql in target.scripted.ran)  # nothing after it ran


def test_a_stop_asked_while_a_batch_runs_starts_none_of_its_later_steps() -> None:
    target = MemoryTarget()
    migrations = _migrations()
    run = runner(target)

    def stop_after(sql: str) -> None:
        if sql == "CREATE TABLE t4 (id int)":  # the second of the batch V4..V7
            run.stop.signum = 15

    target.scripted.on_send = stop_after
    with pytest.raises(Interrupted) as stopped:
        run.run(plan_pending(migrations, target.read_history()))
    assert stopped.value.exit_code == 143
    assert [a.version for a in target.read_history().applied] == VERSIONS[:5]
    assert "CREATE TABLE t5 (id int)" not in target.scripted.ran
    (interrupted,) = target.events("interrupted")
    assert interrupted["half_applied"] is False and interrupted["steps_done"] == 5
