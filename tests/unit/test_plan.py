"""plan.py from literals: states, drift refusal, dependency-aware targets. No files, no database."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from pgshift.errors import DriftError, HalfReverted, UsageError
from pgshift.history import AppliedMigration, History, Progress
from pgshift.model import Header, Migration
from pgshift.plan import check_no_drift, migration_states, plan_pending

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def mig(version: str, deps: tuple[str, ...] = (), checksum: str | None = None) -> Migration:
    return Migration(
        version=version,
        description=f"m{version[-4:]}",
        path=Path(f"{version}_m.sql"),
        text="",
        checksum=checksum or f"sum-{version}",
        header=Header(),
        statements=(),
        rollback=None,
        dependencies=deps,
    )


def applied(version: str, checksum: str | None = None) -> AppliedMigration:
    return AppliedMigration(
        version, f"m{version[-4:]}", checksum or f"sum-{version}", None, NOW, 5, "me", None, "r"
    )


A, B, C, D = "20250101000000", "20250102000000", "20250103000000", "20250104000000"


def test_states_cover_every_kind() -> None:
    migrations = [mig(A), mig(B, checksum="edited"), mig(C), mig(D)]
    history = History(
        applied=(applied(A), applied(B), applied("20241231000000"), applied(D)),
        failed=frozenset(),
    )
    states = {s.version: s.state for s in migration_states(migrations, history)}
    assert states == {
        "20241231000000": "missing",
        A: "applied",
        B: "drifted",
        C: "out-of-order",
        D: "applied",
    }


def test_failed_and_half_applied_are_failed() -> None:
    progress = Progress(C, "sum", "prefix", 1, "run", NOW)
    history = History(applied=(applied(A),), in_progress=(progress,), failed=frozenset({B}))
    states = {s.version: s.state for s in migration_states([mig(A), mig(B), mig(C)], history)}
    assert states == {A: "applied", B: "failed", C: "failed"}


def test_progress_under_a_live_run_is_pending_and_running() -> None:
    progress = Progress(C, "sum", "prefix", 1, "run", NOW)
    history = History(applied=(applied(A),), in_progress=(progress,), failed=frozenset({B}))
    rows = migration_states([mig(A), mig(B), mig(C)], history, run_in_progress=True)
    assert [(r.version, r.state, r.running) for r in rows] == [
        (A, "applied", False),
        (B, "failed", False),
        (C, "pending", True),
    ]


def test_plan_refuses_drift_and_missing() -> None:
    with pytest.raises(DriftError) as info:
        plan_pending([mig(A, checksum="edited"), mig(B)], History(applied=(applied(A),)))
    assert f"{A}_m.sql" in info.value.message
    assert info.value.exit_code == 4
    with pytest.raises(DriftError, match="file is gone"):
        check_no_drift(migration_states([mig(B)], History(applied=(applied(A),))))


def test_target_pulls_in_later_dependencies_only() -> None:
    migrations = [mig(B), mig(A, deps=(C,)), mig(C), mig(D)]  # loader order: deps first
    plan = plan_pending([mig(C), mig(A, deps=(C,)), mig(B), mig(D)], History(), target=A)
    assert plan.versions == (C, A)
    assert plan_pending(migrations, History(), target=B).versions == (B, A, C)
    with pytest.raises(UsageError, match="--target 20990101000000"):
        plan_pending(migrations, History(), target="20990101000000")


def test_resume_point_is_attached_to_its_step() -> None:
    progress = Progress(B, "sum", "prefix", 2, "run", NOW)
    plan = plan_pending([mig(A), mig(B)], History(applied=(applied(A),), in_progress=(progress,)))
    assert [(s.migration.version, s.resume) for s in plan.steps] == [(B, progress)]


# -- issue 8: a rollback that stopped part-way ----------------------------------------------------


def reverting(version: str, done: int = 1) -> Progress:
    return Progress(version, "rb", "prefix", done, "run", NOW, action="revert")


def test_half_reverted_is_failed_with_a_flag_and_the_finishing_command() -> None:
    history = History(applied=(applied(A), applied(B)), in_progress=(reverting(B),))
    rows = {r.version: r for r in migration_states([mig(A), mig(B), mig(C)], history)}
    assert [(v, r.state, r.half_reverted, r.running) for v, r in rows.items()] == [
        (A, "applied", False, False),
        (B, "failed", True, False),
        (C, "pending", False, False),
    ]
    detail = rows[B].detail or ""
    assert "stopped after 1 statement(s)" in detail
    assert "`pgshift rollback safe`" in detail
    assert rows[A].detail is None


def test_revert_under_a_live_run_is_applied_and_running_not_failed() -> None:
    history = History(applied=(applied(A), applied(B)), in_progress=(reverting(B),))
    rows = migration_states([mig(A), mig(B)], history, run_in_progress=True)
    assert [(r.version, r.state, r.half_reverted, r.running) for r in rows] == [
        (A, "applied", False, False),
        (B, "applied", False, True),
    ]


def test_half_reverted_with_its_file_gone_stays_missing_but_flagged() -> None:
    history = History(applied=(applied(A), applied(B)), in_progress=(reverting(B),))
    rows = {r.version: r for r in migration_states([mig(A)], history)}
    assert (rows[B].state, rows[B].half_reverted) == ("missing", True)


def test_up_refuses_a_half_reverted_migration_with_exit_6_naming_it_and_the_command() -> None:
    history = History(applied=(applied(A), applied(B)), in_progress=(reverting(B),))
    with pytest.raises(HalfReverted) as info:
        plan_pending([mig(A), mig(B), mig(C)], history)
    assert info.value.exit_code == 6
    assert info.value.version == B
    assert f"{B}_m0000 is half-reverted" in info.value.message
    assert info.value.hint is not None and "`pgshift rollback safe`" in info.value.hint
    # Two of them (a second rollback killed too): the count that selects exactly both.
    both = History(applied=(applied(A), applied(B)), in_progress=(reverting(A, 0), reverting(B)))
    with pytest.raises(HalfReverted) as info:
        plan_pending([mig(A), mig(B)], both)
    assert info.value.hint is not None and "`pgshift rollback safe --count 2`" in info.value.hint


def test_half_applied_apply_progress_still_plans_a_resume_not_a_refusal() -> None:
    # An apply's progress row on a version that is not applied is not a half-revert.
    history = History(applied=(applied(A),), in_progress=(Progress(B, "s", "p", 1, "run", NOW),))
    assert plan_pending([mig(A), mig(B)], history).versions == (B,)
