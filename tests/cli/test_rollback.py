"""The rollback verbs' exit codes and JSON shapes, run in-process through `main()`."""

from __future__ import annotations

import pytest

from tests.plugins.project import ProjectMaker, migration_text, rollback_text
from tests.support import applied_versions, run_cli

V1 = "20250101000000"

ONE = {
    f"{V1}_one.sql": migration_text(V1, "one", "CREATE TABLE one (id int);"),
    f"{V1}_one_rollback.sql": rollback_text(V1, "one", "DROP TABLE one;"),
}


def test_rollback_without_an_action_is_bad_usage(
    make_project: ProjectMaker, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_cli(capsys, make_project({}), "postgresql:///unused", "rollback")
    assert result.code == 2 and "safe, to-version" in result.err


def test_list_backups_needs_no_database_and_has_the_spec_shape(
    make_project: ProjectMaker, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_cli(
        capsys, make_project({}), "postgresql://u:pw@127.0.0.1:1/x", "rollback", "list-backups",
        "--json",
    )  # fmt: skip
    assert result.code == 0, result.err
    assert result.json() == {"backups": []}


def test_scratch_url_without_simulate_is_bad_usage(
    make_project: ProjectMaker, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_cli(
        capsys, make_project(ONE), "postgresql:///unused", "rollback", "dry-run",
        "--scratch-url", "postgresql:///x",
    )  # fmt: skip
    assert result.code == 2 and "--simulate" in result.err


def test_refuses_without_terminal_and_without_yes(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(ONE)
    assert run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup").code == 0
    for args in (("safe",), ("to-version", "0"), ("emergency",)):
        result = run_cli(capsys, project, db_url, "rollback", *args)
        assert result.code == 2, (args, result.err)
        assert "--yes" in result.err and "terminal" in result.err
    assert applied_versions(db_url) == [V1]


def test_json_shapes_of_list_backups_restore_and_safe(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(ONE)
    up = run_cli(capsys, project, db_url, "up", "--yes", "--json").json()
    listed = run_cli(capsys, project, db_url, "rollback", "list-backups", "--json").json()
    (entry,) = listed["backups"]
    assert set(entry) >= {
        "id", "created_at", "reason", "database", "size_bytes", "sha256", "versions",
    }  # fmt: skip
    assert entry["id"] == up["backup_id"] and entry["reason"] == "before-up"
    safe = run_cli(capsys, project, db_url, "rollback", "safe", "--yes", "--json")
    assert safe.code == 0, safe.err
    assert set(safe.json()) >= {"run_id", "steps", "backup_id"}
    assert safe.json()["steps"][0] == {
        "version": V1,
        "action": "revert",
        "status": "reverted",
        "duration_ms": safe.json()["steps"][0]["duration_ms"],
    }
    unknown = run_cli(capsys, project, db_url, "rollback", "restore", "nope", "--yes")
    assert unknown.code == 2 and "no backup 'nope'" in unknown.err
    nothing = run_cli(capsys, project, db_url, "rollback", "safe", "--yes")
    assert nothing.code == 2 and "only 0 migration(s) are applied" in nothing.err


def test_facade_verbs_stay_callable_after_their_modules_are_imported() -> None:
    import pgshift.ops.backup
    import pgshift.ops.rollback

    assert callable(pgshift.backup) and callable(pgshift.rollback)
    assert pgshift.rollback_emergency.__name__ == "rollback_emergency"
    assert {"backup", "list_backups", "restore", "plan_rollback", "rollback"} <= set(
        pgshift.__all__
    )


ROLLBACK_FACADE = (
    "backup",
    "list_backups",
    "plan_restore",
    "restore",
    "plan_rollback",
    "rollback",
    "preview_rollback",
    "plan_emergency",
    "rollback_emergency",
)


def test_the_rollback_facade_is_typed_without_any_or_callbacks() -> None:
    """Principle 4: every result type exported and typed; events, not callbacks."""
    import inspect

    import pgshift

    for name in ROLLBACK_FACADE:
        assert name in pgshift.__all__, name
        signature = inspect.signature(getattr(pgshift, name))
        annotations = [str(p.annotation) for p in signature.parameters.values()]
        annotations.append(str(signature.return_annotation))
        for text in annotations:
            assert "Any" not in text and "Callable" not in text, (name, text)
        assert signature.return_annotation is not inspect.Signature.empty, name
    for name in (
        "DryRunReport", "EmergencyPlan", "EmergencyResult", "Manifest", "Plan", "RestorePlan",
        "RestoreResult", "RollbackCheck", "RunResult", "SchemaObject", "Simulation",
        "SimulatedStep", "StatementPreview", "StepPreview",
    ):  # fmt: skip
        assert name in pgshift.__all__, name
        assert isinstance(getattr(pgshift, name), type), name


def test_rollback_safe_json_is_one_document_when_nothing_is_left_to_revert(
    make_project: ProjectMaker, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(ONE)
    assert run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup").code == 0
    result = run_cli(capsys, project, db_url, "rollback", "to-version", V1, "--yes", "--json")
    assert result.code == 0, result.err
    assert result.json() == {"run_id": None, "steps": [], "backup_id": None}
    refused = run_cli(capsys, project, db_url, "rollback", "to-version", "nope", "--json")
    assert refused.code == 2 and "not applied" in refused.err
