"""plan_safe_rollback from literals: which migrations are reverted, in what order, what refuses."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pgshift.errors import Problem, UsageError
from pgshift.history import AppliedMigration, History, Progress
from pgshift.model import Header, Migration, RollbackScript
from pgshift.plan import (
    ERROR,
    OK,
    REVERT,
    STORED_ROLLBACK,
    WARNING,
    check_rollback,
    emergency_selection,
    plan_revert,
    plan_safe_rollback,
    revert_plan,
    rollback_selection,
)
from pgshift.source.loader import checksum_text

V1, V2, V3, V4 = "20250101000000", "20250102000000", "20250103000000", "20250104000000"
T0 = datetime(2025, 6, 1, tzinfo=UTC)


def mig(version: str, *, deps: tuple[str, ...] = (), rollback: bool = True) -> Migration:
    path = Path(f"/m/{version}_m{version[-6:]}.sql")
    script = (
        RollbackScript(
            path=path.with_name(f"{path.stem}_rollback.sql"),
            text="SELECT 1;",
            checksum=f"rb-{version}",
            header=Header(),
            statements=(),
        )
        if rollback
        else None
    )
    return Migration(
        version=version,
        description=f"m{version[-6:]}",
        path=path,
        text="SELECT 1;",
        checksum=f"fw-{version}",
        header=Header(),
        statements=(),
        rollback=script,
        dependencies=deps,
    )


def row(version: str, minute: int, *, rollback_checksum: str | None = "same") -> AppliedMigration:
    return AppliedMigration(
        version=version,
        description=f"m{version[-6:]}",
        checksum=f"fw-{version}",
        rollback_checksum=f"rb-{version}" if rollback_checksum == "same" else rollback_checksum,
        applied_at=T0 + timedelta(minutes=minute),
        duration_ms=1,
        applied_by="me",
        host=None,
        run_id="r",
    )


def history(*rows: AppliedMigration, progress: tuple[Progress, ...] = ()) -> History:
    return History(applied=rows, in_progress=progress)


def test_default_is_the_last_applied_one_by_apply_order_not_by_version() -> None:
    # V1 was applied out of order, after V2: it is the newest change.
    h = history(row(V2, 1), row(V1, 2))
    assert rollback_selection(h) == (V1,)
    assert rollback_selection(h, count=2) == (V1, V2)


def test_to_version_keeps_v_and_zero_means_everything() -> None:
    h = history(row(V1, 1), row(V2, 2), row(V3, 3))
    assert rollback_selection(h, to_version=V1) == (V3, V2)
    assert rollback_selection(h, to_version="0") == (V3, V2, V1)
    assert rollback_selection(h, to_version=V3) == ()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"count": 3}, "only 2 migration(s) are applied"),
        ({"count": 0}, "at least 1"),
        ({"to_version": V4}, "is not applied"),
        ({"count": 1, "to_version": V1}, "not both"),
    ],
)
def test_bad_selection_is_a_usage_error(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        rollback_selection(history(row(V1, 1), row(V2, 2)), **kwargs)  # type: ignore[arg-type]


def test_plan_reverts_newest_first_with_revert_steps_and_resume() -> None:
    resume = Progress(V3, "rb", "p", 1, "run", T0, action="revert")
    h = history(row(V1, 1), row(V2, 2), row(V3, 3), progress=(resume,))
    plan = plan_safe_rollback([mig(V1), mig(V2), mig(V3)], h, count=2)
    assert plan.versions == (V3, V2)
    assert [s.action for s in plan.steps] == ["revert", "revert"]
    assert plan.steps[0].resume == resume and plan.steps[1].resume is None
    assert plan.steps[0].script.path.name.endswith("_rollback.sql")


def test_missing_rollback_file_refuses_and_names_it() -> None:
    h = history(row(V1, 1), row(V2, 2))
    with pytest.raises(UsageError, match=r"m000000_rollback\.sql"):
        plan_safe_rollback([mig(V1), mig(V2, rollback=False)], h)


def test_missing_migration_file_refuses() -> None:
    with pytest.raises(UsageError, match="file is gone"):
        plan_safe_rollback([mig(V1)], history(row(V1, 1), row(V2, 2)))


def test_parse_problem_in_a_rollback_file_refuses_but_one_elsewhere_does_not() -> None:
    h = history(row(V1, 1), row(V2, 2))
    migrations = [mig(V1), mig(V2)]
    rollback_path = str(migrations[1].rollback.path)  # type: ignore[union-attr]
    elsewhere = Problem("/m/20250109000000_new.sql", 3, "syntax error")
    assert plan_safe_rollback(migrations, h, problems=[elsewhere]).versions == (V2,)
    with pytest.raises(UsageError, match=r"_rollback\.sql:4: syntax error at or near"):
        plan_safe_rollback(
            migrations, h, problems=[Problem(rollback_path, 4, "syntax error at or near")]
        )


def test_dependency_of_a_migration_that_stays_applied_cannot_be_reverted_alone() -> None:
    # V3 depends on V2; V4 (applied later) does not. Reverting V4 and V3 is fine, but
    # V2 alone would break V3 even though V2 is not the newest.
    migrations = [mig(V1), mig(V2), mig(V3, deps=(V2,)), mig(V4)]
    h = history(row(V1, 1), row(V2, 2), row(V3, 3), row(V4, 4))
    assert plan_safe_rollback(migrations, h, count=2).versions == (V4, V3)
    checks = {c.name: c for c in check_rollback(migrations, h, [V2])}
    assert checks["dependencies"].status == ERROR
    assert f"{V3} depends on {V2}" in checks["dependencies"].detail
    assert plan_safe_rollback(migrations, h, to_version=V1).versions == (V4, V3, V2)


def test_dependents_are_reverted_first_even_when_applied_earlier() -> None:
    # A history where the dependent was applied before its dependency (history rewritten by
    # hand): the order still reverts the dependent first.
    migrations = [mig(V1, deps=(V2,)), mig(V2)]
    h = history(row(V1, 1), row(V2, 2))
    assert plan_safe_rollback(migrations, h, to_version="0").versions == (V1, V2)


def test_changed_rollback_file_is_a_warning_not_a_refusal() -> None:
    h = history(row(V1, 1, rollback_checksum="something-else"))
    checks = {c.name: c for c in check_rollback([mig(V1)], h, [V1])}
    assert checks["checksums"].status == WARNING
    assert "changed since" in checks["checksums"].detail
    assert plan_safe_rollback([mig(V1)], h).versions == (V1,)
    unrecorded = history(row(V1, 1, rollback_checksum=None))
    assert {c.name: c.status for c in check_rollback([mig(V1)], unrecorded, [V1])}[
        "checksums"
    ] == OK


def test_plan_revert_keeps_only_what_is_still_applied_or_half_applied() -> None:
    half = Progress(V3, "fw", "p", 1, "run", T0, action="apply")
    h = history(row(V1, 1), progress=(half,))
    plan = plan_revert([mig(V1), mig(V2), mig(V3)], h, [V3, V2, V1])
    assert plan.versions == (V3, V1)
    assert plan.steps[0].resume is None  # an apply progress row is not a revert to resume


# -- issue 8: a rollback that stopped part-way is finished first ----------------------------------


def half(version: str, done: int = 1) -> Progress:
    return Progress(version, f"rb-{version}", "p", done, "run", T0, action="revert")


def test_half_reverted_comes_first_whatever_its_apply_order() -> None:
    # V2 was applied before V3, but its rollback stopped part-way: finishing it comes first.
    h = history(row(V1, 1), row(V2, 2), row(V3, 3), progress=(half(V2),))
    assert rollback_selection(h) == (V2,)
    assert rollback_selection(h, count=2) == (V2, V3)
    assert rollback_selection(h, to_version=V1) == (V2, V3)
    assert rollback_selection(h, to_version="0") == (V2, V3, V1)


def test_the_issue_8_sequence_rollback_safe_finishes_the_killed_revert_with_its_resume() -> None:
    # `rollback safe --count 3` reverted V3 and was killed inside V2's rollback.
    resume = half(V2)
    h = history(row(V1, 1), row(V2, 2), progress=(resume,))
    plan = plan_safe_rollback([mig(V1), mig(V2), mig(V3)], h)
    assert plan.versions == (V2,)
    assert plan.steps[0].action == "revert" and plan.steps[0].resume == resume


def test_to_version_that_would_keep_a_half_reverted_migration_applied_is_refused() -> None:
    h = history(row(V1, 1), row(V2, 2), row(V3, 3), progress=(half(V2),))
    for kept in (V2, V3):
        with pytest.raises(UsageError, match=f"{V2} would stay applied") as info:
            rollback_selection(h, to_version=kept)
        assert info.value.hint is not None and "`pgshift rollback safe`" in info.value.hint


# -- the rollback SQL stored with the applied row (a downgrade: the newer files are gone) --------

STORED = (
    "-- Rollback: 20250102000000_m000000_rollback.sql\r\n"
    "-- @transaction: false\r\n"
    "DROP INDEX CONCURRENTLY IF EXISTS b_idx;\r\n"
    "DROP TABLE b;\r\n"
)


def stored_row(version: str, minute: int, text: str = STORED) -> AppliedMigration:
    """An applied row as the runner writes it: the rollback file's text and its checksum."""
    return replace(row(version, minute), rollback_checksum=checksum_text(text), rollback_sql=text)


def checks_of(
    migrations: list[Migration], h: History, versions: list[str]
) -> dict[str, tuple[str, str]]:
    return {c.name: (c.status, c.detail) for c in check_rollback(migrations, h, versions)}


def test_a_migration_whose_files_are_gone_reverts_with_its_stored_sql() -> None:
    h = history(row(V1, 1), stored_row(V2, 2))
    checks = checks_of([mig(V1)], h, [V2])
    assert checks["rollback-files"] == (
        WARNING,
        f"{V2}_m000000: its files are gone, {STORED_ROLLBACK}",
    )
    assert checks["checksums"][0] == OK  # the stored text is what was recorded
    plan = plan_safe_rollback([mig(V1)], h)
    (step,) = plan.steps
    assert (step.migration.version, step.migration.name, step.action) == (
        V2,
        f"{V2}_m000000",
        "revert",
    )
    script = step.script
    # Parsed like the file was: its header still decides, the statements are classified.
    assert script.path == Path(f"{V2}_m000000_rollback.sql")
    assert script.header.transaction is False
    assert [(st.sql, st.line, st.transactional) for st in script.statements] == [
        ("DROP INDEX CONCURRENTLY IF EXISTS b_idx", 3, False),
        ("DROP TABLE b", 4, True),
    ]
    assert step.migration.rollback is not None
    assert step.migration.rollback.text_checksum == h.applied[1].rollback_checksum


def test_a_deleted_rollback_file_falls_back_to_the_stored_sql_beside_the_migration() -> None:
    migration = mig(V2, rollback=False)
    h = history(stored_row(V2, 1))
    checks = checks_of([migration], h, [V2])
    assert checks["rollback-files"] == (
        WARNING,
        f"{V2}_m000000: its rollback file is gone, {STORED_ROLLBACK}",
    )
    (step,) = plan_safe_rollback([migration], h).steps
    assert step.migration.path == migration.path  # the file on disk, with the stored rollback
    assert step.script.path == Path(f"/m/{V2}_m000000_rollback.sql")
    assert step.migration.rollback is not None and step.migration.rollback.text == STORED
    assert step.migration.rollback.text_checksum == checksum_text(STORED)


def test_a_rollback_file_on_disk_wins_over_the_stored_sql_and_its_edit_is_reported() -> None:
    h = history(stored_row(V2, 1))  # recorded checksum: the stored text's, not the file's
    checks = checks_of([mig(V2)], h, [V2])
    assert checks["rollback-files"][0] == OK
    assert checks["checksums"] == (
        WARNING,
        f"{V2}_m000000_rollback.sql changed since {V2} was applied",
    )
    (step,) = plan_safe_rollback([mig(V2)], h).steps
    assert step.script.checksum == f"rb-{V2}"  # the file as it is now


def test_neither_a_file_nor_stored_sql_still_refuses() -> None:
    # Applied before pgshift stored rollbacks (or without a rollback file): NULL in the row.
    h = history(row(V1, 1), row(V2, 2))
    assert checks_of([mig(V1)], h, [V2])["rollback-files"][0] == ERROR
    with pytest.raises(UsageError, match="its migration file is gone"):
        plan_safe_rollback([mig(V1)], h)
    with pytest.raises(UsageError, match=r"no rollback file \(20250102000000_m000000_rollback"):
        plan_safe_rollback([mig(V1), mig(V2, rollback=False)], h)
    # plan_revert (the re-plan under the lock) gives no step that could not run either.
    assert plan_revert([mig(V1)], h, [V2]).steps == ()


def test_stored_sql_that_no_longer_parses_refuses_with_its_line() -> None:
    h = history(stored_row(V2, 1, "DROP TABLE b;\nDROP TABEL c;\n"))
    status, detail = checks_of([], h, [V2])["rollback-files"]
    assert status == ERROR
    assert f"{V2}_m000000_rollback.sql:2" in detail
    with pytest.raises(UsageError, match="refusing to roll back"):
        plan_safe_rollback([], h)


def test_stored_sql_that_does_not_match_its_recorded_checksum_is_a_warning() -> None:
    h = history(replace(stored_row(V2, 1), rollback_checksum="f" * 64))
    assert checks_of([], h, [V2])["checksums"] == (
        WARNING,
        f"the stored rollback SQL of {V2} changed since {V2} was applied",
    )


def test_replanning_drops_a_stand_in_another_run_already_reverted() -> None:
    versions = [V3, V2]
    before = history(row(V1, 1), stored_row(V2, 2), stored_row(V3, 3))
    assert plan_revert([mig(V1)], before, versions).versions == (V3, V2)
    after = history(row(V1, 1), stored_row(V2, 2))
    assert plan_revert([mig(V1)], after, versions).versions == (V2,)


def test_rollback_checks_word_for_word() -> None:
    assert [(c.name, c.status, c.detail) for c in check_rollback([], History(), [])] == [
        ("selection", OK, "nothing to revert")
    ]
    edited = replace(mig(V2), checksum="edited")
    stopped = Progress(V2, "rb", "p", 2, "r", T0, action="revert")
    h = history(row(V1, 1), row(V2, 2), progress=(stopped,))
    checks = check_rollback([mig(V1), edited], h, [V2, V1])
    assert [(c.name, c.status, c.detail) for c in checks] == [
        ("rollback-files", OK, "2 rollback file(s) exist and parse"),
        ("checksums", WARNING, f"{edited.path.name} changed since it was applied"),
        ("dependencies", OK, "no migration that stays applied depends on these"),
        ("half-applied", WARNING, f"{V2} stopped half-way (revert, 2 statement(s) done)"),
    ]
    missing = check_rollback([mig(V1, rollback=False)], history(row(V1, 1), row(V2, 2)), [V2, V1])
    assert (missing[0].name, missing[0].status, missing[0].detail) == (
        "rollback-files",
        ERROR,
        f"{V2}_m000000: applied, but its migration file is gone;"
        f" {V1}_m000000: no rollback file ({V1}_m000000_rollback.sql)",
    )


# -- the plan carries its checks; dry-run's plan does not refuse -----------------------------------


def test_plan_rollback_returns_a_revert_plan_with_its_checks() -> None:
    h = history(row(V1, 1), row(V2, 2))
    plan = plan_safe_rollback([mig(V1), mig(V2)], h)
    assert (plan.kind, plan.versions, plan.selection) == (REVERT, (V2,), (V2,))
    assert [(c.name, c.status) for c in plan.checks] == [
        ("rollback-files", OK),
        ("checksums", OK),
        ("dependencies", OK),
    ]


def test_revert_plan_keeps_a_failed_check_where_plan_rollback_refuses() -> None:
    migrations = [mig(V1), mig(V2, rollback=False)]
    h = history(row(V1, 1), row(V2, 2))
    with pytest.raises(UsageError) as refused:
        plan_safe_rollback(migrations, h)
    assert refused.value.exit_code == 2 and "nothing was changed" in refused.value.message
    shown = revert_plan(migrations, h)
    assert shown.kind == REVERT and shown.selection == (V2,)
    assert shown.checks[0].name == "rollback-files" and shown.checks[0].status == ERROR


# -- emergency: what undoing the last run takes ----------------------------------------------------


def run_row(version: str, minute: int, run_id: str) -> AppliedMigration:
    return replace(row(version, minute), run_id=run_id)


def test_emergency_reverts_the_last_runs_migrations_and_a_half_applied_one() -> None:
    half = Progress(V4, "fw", "p", 1, "b", T0)
    h = history(run_row(V1, 1, "a"), run_row(V2, 2, "b"), run_row(V3, 3, "b"), progress=(half,))
    migrations = [mig(v) for v in (V1, V2, V3, V4)]
    assert emergency_selection(migrations, h, "b") == ((V4, V3, V2), (V1,))
    assert emergency_selection(migrations, h, None) == ((V4,), (V1, V2, V3))


def test_emergency_finishes_a_half_revert_of_an_older_run_than_the_last_up() -> None:
    # Run "a" applied V1 and V2, run "b" V3; a rollback then reverted V3 and stopped half-way
    # through V2's rollback file. The last `up` run is "b", whose migrations are all gone.
    stopped = Progress(V2, "rb", "p", 1, "rollback", T0, action="revert")
    h = history(run_row(V1, 1, "a"), run_row(V2, 2, "a"), progress=(stopped,))
    migrations = [mig(v) for v in (V1, V2, V3)]
    assert emergency_selection(migrations, h, "b") == ((V2,), (V1,))
    # Half-reverted in the last run itself: reverted once, not twice.
    assert emergency_selection(migrations, h, "a") == ((V2, V1), ())


def test_a_half_done_expand_refuses_rolling_back_what_lies_beneath_it() -> None:
    """A killed expand: reverting V1 would run its rollback under V2's trigger and columns."""
    expanding = replace(mig(V2), header=Header(expand_contract=True))
    stopped = Progress(V2, "fw", "p", 8, "r", T0, action="apply")
    h = history(row(V1, 1), progress=(stopped,))
    with pytest.raises(UsageError, match=r"half-expanded: the expand of .* run `pgshift up`"):
        plan_safe_rollback([mig(V1), expanding], h)
    # A plain migration stopped half-way keeps its warning only.
    plain = plan_safe_rollback([mig(V1), mig(V2)], h)
    assert plain.versions == (V1,)
    assert [c.status for c in plain.checks if c.name == "half-applied"] == [WARNING]
