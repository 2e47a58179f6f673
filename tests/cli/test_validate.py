"""`pgshift validate` end to end: exit codes, the JSON shape, GitHub annotations, drift, and up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pgshift.config import DEFAULT_DOCS_URL
from tests.plugins.project import ProjectMaker, migration_text, rollback_text
from tests.support import applied_versions, run_cli

V1, V2 = "20250101000000", "20250102000000"
SAFE = "CREATE TABLE users (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text);"
BLOCKING = "CREATE INDEX users_email_idx ON users (email);"


def _pair(version: str, description: str, sql: str, undo: str, **kw: object) -> dict[str, str]:
    return {
        f"{version}_{description}.sql": migration_text(version, description, sql, **kw),  # type: ignore[arg-type]
        f"{version}_{description}_rollback.sql": rollback_text(version, description, undo),
    }


@pytest.fixture(autouse=True)
def _no_backups(monkeypatch: pytest.MonkeyPatch) -> None:
    """Backups are another command's business; these tests are about lint and drift."""
    monkeypatch.setenv("DB_BACKUP_ENABLED", "false")


def _safe_project(make_project: ProjectMaker) -> Path:
    return make_project(_pair(V1, "add_users", SAFE, "DROP TABLE users;"))


def test_clean_project_exits_0_and_says_so(
    capsys: pytest.CaptureFixture[str], make_project: ProjectMaker
) -> None:
    result = run_cli(capsys, _safe_project(make_project), None, "validate")
    assert result.code == 0, result.out + result.err
    assert "no problems found" in result.out
    assert "drift not checked" in result.out


def test_error_finding_exits_1_with_caret_and_help(
    capsys: pytest.CaptureFixture[str], make_project: ProjectMaker
) -> None:
    project = make_project(
        _pair(V1, "add_users", SAFE, "DROP TABLE users;")
        | _pair(V2, "index_email", BLOCKING, "DROP INDEX CONCURRENTLY users_email_idx;")
    )
    result = run_cli(capsys, project, None, "validate")
    assert result.code == 1
    header_lines = migration_text(V2, "index_email", BLOCKING).count("\n")
    where = f"migrations/{V2}_index_email.sql:{header_lines}:1: error[require-concurrent-index]"
    assert where in result.out
    assert f" {header_lines} | {BLOCKING}" in result.out
    assert "^" in result.out and "help: use CREATE INDEX CONCURRENTLY" in result.out


def test_json_shape_is_the_specs(
    capsys: pytest.CaptureFixture[str], make_project: ProjectMaker
) -> None:
    project = make_project(
        {f"{V1}_add_users.sql": migration_text(V1, "add_users", "CREATE TABLE t (j json);")}
    )
    result = run_cli(capsys, project, None, "validate", "--json")
    data = result.json()
    assert set(data) == {"ok", "findings"}
    assert data["ok"] is False  # the missing rollback is an error
    for finding in data["findings"]:
        spec = {"code", "severity", "category", "file", "line", "column", "message", "help"}
        assert set(finding) == spec | {"url", "fix"}  # the SPEC allows keys to be added
        assert finding["severity"] in ("error", "warning", "note")
        assert finding["url"] == f"{DEFAULT_DOCS_URL}{finding['code']}.md"
        assert finding["url"].startswith("https://")
    codes = {f["code"]: (f["severity"], f["category"]) for f in data["findings"]}
    assert codes == {"missing-rollback": ("error", "file"), "prefer-jsonb": ("warning", "style")}
    assert result.code == 1


DROPS_TRIGGER = "DROP TRIGGER users_audit ON users;"


def _note_project(make_project: ProjectMaker) -> Path:
    """A project whose only finding is a note (drop-trigger)."""
    undo = "SELECT 1;"
    return make_project(
        _pair(V1, "add_users", SAFE, "DROP TABLE users;")
        | _pair(V2, "drop_audit", DROPS_TRIGGER, undo)
    )


def test_a_note_never_fails_validate_not_even_strict(
    capsys: pytest.CaptureFixture[str], make_project: ProjectMaker
) -> None:
    project = _note_project(make_project)
    for flags in ((), ("--strict",)):
        result = run_cli(capsys, project, None, "validate", "--json", *flags)
        assert result.code == 0, result.out
        data = result.json()
        assert data["ok"] is True
        ((code, severity, category),) = {
            (f["code"], f["severity"], f["category"]) for f in data["findings"]
        }
        assert (code, severity, category) == ("drop-trigger", "note", "semantics")
    text = run_cli(capsys, project, None, "validate")
    assert text.code == 0
    assert f"{V2}_drop_audit.sql:" in text.out and ": note[drop-trigger] " in text.out
    assert "0 error(s), 0 warning(s), 1 note(s)" in text.out
    github = run_cli(capsys, project, None, "validate", "--format", "github")
    assert github.code == 0
    (annotation,) = [line for line in github.out.splitlines() if line.startswith("::")]
    assert annotation.startswith(f"::notice file=migrations/{V2}_drop_audit.sql,line=")
    sarif = run_cli(capsys, project, None, "validate", "--format", "sarif")
    (result,) = sarif.json()["runs"][0]["results"]
    assert result["level"] == "note" and result["properties"]["category"] == "semantics"


def test_links_follow_the_docs_url_setting_in_every_format(
    capsys: pytest.CaptureFixture[str],
    make_project: ProjectMaker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = _note_project(make_project)
    monkeypatch.setenv("PGSHIFT_DOCS_URL", "https://docs.example.com/pgshift/rules")
    page = "https://docs.example.com/pgshift/rules/drop-trigger.md"
    text = run_cli(capsys, project, None, "validate")
    assert f"  category: semantics · docs: {page}" in text.out
    (finding,) = run_cli(capsys, project, None, "validate", "--json").json()["findings"]
    assert finding["url"] == page
    github = run_cli(capsys, project, None, "validate", "--format", "github")
    assert page in github.out
    sarif = run_cli(capsys, project, None, "validate", "--format", "sarif").json()
    assert sarif["runs"][0]["tool"]["driver"]["rules"][0]["helpUri"] == page
    monkeypatch.setenv("PGSHIFT_DOCS_URL", "docs/rules")
    bad = run_cli(capsys, project, None, "validate")
    assert bad.code == 2 and "PGSHIFT_DOCS_URL" in bad.err


def test_warnings_pass_unless_strict(
    capsys: pytest.CaptureFixture[str], make_project: ProjectMaker
) -> None:
    project = make_project(
        _pair(V1, "add_events", "CREATE TABLE events (at timestamp);", "DROP TABLE events;")
    )
    relaxed = run_cli(capsys, project, None, "validate", "--json")
    assert relaxed.code == 0 and relaxed.json()["ok"] is True
    assert [f["code"] for f in relaxed.json()["findings"]] == ["prefer-timestamptz"]
    strict = run_cli(capsys, project, None, "validate", "--json", "--strict")
    assert strict.code == 1
    assert [f["severity"] for f in strict.json()["findings"]] == ["error"]


def test_github_annotations(capsys: pytest.CaptureFixture[str], make_project: ProjectMaker) -> None:
    project = make_project(
        _pair(V1, "add_users", SAFE, "DROP TABLE users;")
        | _pair(V2, "index_email", BLOCKING, "DROP INDEX CONCURRENTLY users_email_idx;")
    )
    result = run_cli(capsys, project, None, "validate", "--format", "github")
    lines = [line for line in result.out.splitlines() if line.startswith("::")]
    assert any(
        line.startswith(f"::error file=migrations/{V2}_index_email.sql,line=")
        and "title=require-concurrent-index::" in line
        for line in lines
    ), result.out
    assert all("\n" not in line for line in lines)


def test_sarif_log_is_structurally_valid(
    capsys: pytest.CaptureFixture[str], make_project: ProjectMaker
) -> None:
    from tests.unit.test_sarif import check_sarif

    project = make_project(
        _pair(V1, "add_users", SAFE, "DROP TABLE users;")
        | _pair(V2, "index_email", BLOCKING, "DROP INDEX CONCURRENTLY users_email_idx;")
    )
    result = run_cli(capsys, project, None, "validate", "--format", "sarif")
    assert result.code == 1
    log = result.json()
    check_sarif(log)
    (run,) = log["runs"]
    ids = [rule["id"] for rule in run["tool"]["driver"]["rules"]]
    assert "require-concurrent-index" in ids
    hit = next(r for r in run["results"] if r["ruleId"] == "require-concurrent-index")
    location = hit["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == f"migrations/{V2}_index_email.sql"
    assert hit["level"] == "error"
    assert "CONCURRENTLY" in hit["properties"]["fix"]


def test_text_output_links_the_rule_page_and_shows_the_fix(
    capsys: pytest.CaptureFixture[str], make_project: ProjectMaker
) -> None:
    project = make_project(
        _pair(V1, "add_users", SAFE, "DROP TABLE users;")
        | _pair(V2, "index_email", BLOCKING, "DROP INDEX CONCURRENTLY users_email_idx;")
    )
    result = run_cli(capsys, project, None, "validate")
    page = f"{DEFAULT_DOCS_URL}require-concurrent-index.md"
    assert f"  category: locking · docs: {page}" in result.out
    assert "  fix: build the index concurrently" in result.out
    assert f"    +++ b/migrations/{V2}_index_email.sql" in result.out
    assert "    +CREATE INDEX CONCURRENTLY users_email_idx ON users (email);" in result.out


def test_pg_version_flag_changes_version_aware_rules(
    capsys: pytest.CaptureFixture[str], make_project: ProjectMaker
) -> None:
    sql = "ALTER TABLE users ADD COLUMN active boolean DEFAULT true;"
    project = make_project(
        _pair(V1, "add_users", SAFE, "DROP TABLE users;")
        | _pair(V2, "add_active", sql, "ALTER TABLE users DROP COLUMN active;")
    )
    new = run_cli(capsys, project, None, "validate", "--json")
    old = run_cli(capsys, project, None, "validate", "--json", "--pg-version", "10.23")
    assert "add-column-rewrite" not in {f["code"] for f in new.json()["findings"]}
    assert "add-column-rewrite" in {f["code"] for f in old.json()["findings"]}
    bad = run_cli(capsys, project, None, "validate", "--pg-version", "latest")
    assert bad.code == 2


def test_structural_problems_become_findings(
    capsys: pytest.CaptureFixture[str], make_project: ProjectMaker
) -> None:
    project = make_project(
        {
            "2025_bad_name.sql": "SELECT 1;",
            f"{V1}_add_users.sql": migration_text(V1, "add_users", SAFE),
            f"{V1}_add_users_rollback.sql": rollback_text(V1, "add_users", "DROP TABEL users;"),
        }
    )
    result = run_cli(capsys, project, None, "validate", "--json")
    found = {(Path(f["file"]).name, f["code"]) for f in result.json()["findings"]}
    assert ("2025_bad_name.sql", "invalid-file") in found
    assert (f"{V1}_add_users_rollback.sql", "invalid-file") in found
    assert result.code == 1


def test_never_starts_the_embedded_server(
    capsys: pytest.CaptureFixture[str], make_project: ProjectMaker, tmp_path: Path
) -> None:
    project = _safe_project(make_project)
    result = run_cli(capsys, project, None, "validate")
    assert result.code == 0
    assert not (project / ".pgshift" / "pgdata").exists()


def test_drift_and_missing_files_with_a_database(
    capsys: pytest.CaptureFixture[str], make_project: ProjectMaker, db_url: str
) -> None:
    project = make_project(
        _pair(V1, "add_users", SAFE, "DROP TABLE users;")
        | _pair(V2, "add_orders", "CREATE TABLE orders (id bigint);", "DROP TABLE orders;")
    )
    assert run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup").code == 0
    clean = run_cli(capsys, project, db_url, "validate", "--json")
    assert clean.code == 0 and clean.json()["findings"] == []
    forward = project / "migrations" / f"{V1}_add_users.sql"
    forward.write_text(forward.read_text() + "\nCOMMENT ON TABLE users IS 'edited';\n")
    for name in (f"{V2}_add_orders.sql", f"{V2}_add_orders_rollback.sql"):
        (project / "migrations" / name).unlink()
    result = run_cli(capsys, project, db_url, "validate", "--json")
    found = {(Path(f["file"]).name, f["code"]) for f in result.json()["findings"]}
    assert found == {
        (f"{V1}_add_users.sql", "checksum-drift"),
        (f"{V2}_add_orders.sql", "missing-file"),
    }
    assert result.code == 1


def test_up_refuses_a_broken_zero_downtime_claim(
    capsys: pytest.CaptureFixture[str], make_project: ProjectMaker, db_url: str
) -> None:
    project = make_project(
        _pair(V1, "add_users", SAFE, "DROP TABLE users;")
        | _pair(
            V2,
            "index_email",
            BLOCKING,
            "DROP INDEX CONCURRENTLY users_email_idx;",
            zero_downtime=True,
        )
    )
    result = run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup")
    assert result.code == 2, result.out + result.err
    assert "zero-downtime" in result.err and f"{V2}_index_email.sql" in result.err
    assert applied_versions(db_url) == []


def test_up_prints_other_findings_and_applies(
    capsys: pytest.CaptureFixture[str], make_project: ProjectMaker, db_url: str
) -> None:
    project = make_project(
        _pair(V1, "add_users", SAFE, "DROP TABLE users;")
        | _pair(V2, "index_email", BLOCKING, "DROP INDEX CONCURRENTLY users_email_idx;")
    )
    result = run_cli(capsys, project, db_url, "up", "--yes", "--skip-backup")
    assert result.code == 0, result.err
    assert "require-concurrent-index" in result.err
    assert f"docs: {DEFAULT_DOCS_URL}require-concurrent-index.md" in result.err
    assert applied_versions(db_url) == [V1, V2]


_STARTUP = """
import json, sys
from pgshift.cli.main import main
code = main(sys.argv[1:])
mods = {"pgshift.cli.commands", "pgshift.cli.fleet", "pgshift.embedded", "pgshift.plan"}
print(json.dumps({"code": code, "loaded": sorted(mods & set(sys.modules))}))
"""


def _probe(project: Path, script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` (which calls pgshift's main with ``args``) in a fresh interpreter in
    ``project``, with no database configured: what it imported is what a user's run imports."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DB_URL")}
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=project, env=env, capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_validate_starts_without_the_other_verbs_or_the_embedded_server(
    make_project: ProjectMaker,
) -> None:
    """Issue 10: a linter's start-up is most of a small folder's time; validate imports only its
    own verb's module and, with no database and no embedded server, not embedded.py."""
    import json

    project = _safe_project(make_project)
    done = _probe(project, _STARTUP, "validate", "-q")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert report == {"code": 0, "loaded": []}


_MEMO_PROBE = """
import json, sys
from pgshift.cli.main import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "parser": "pglast" in sys.modules,
                  "rules": "pgshift.lint.engine" in sys.modules}))
"""


def test_an_unchanged_project_is_not_linted_again_and_an_edit_is(
    capsys: pytest.CaptureFixture[str], make_project: ProjectMaker
) -> None:
    """Issue 10: the findings memo (lint/memo.py) answers a run over unchanged files without
    the parser or the rules, with the same report; an edited file is linted again."""
    import json

    import pgshift

    project = make_project(
        _pair(V1, "add_users", SAFE, "DROP TABLE users;")
        | _pair(V2, "index_email", BLOCKING, "DROP INDEX CONCURRENTLY users_email_idx;")
    )
    first = run_cli(capsys, project, None, "validate", "--json")
    assert (project / ".pgshift" / "cache" / "lint.json").is_file()
    again = run_cli(capsys, project, None, "validate", "--json")
    assert (again.code, again.out) == (first.code, first.out)
    assert "require-concurrent-index" in first.out

    done = _probe(project, _MEMO_PROBE, "validate", "--json")
    probe = json.loads(done.stdout.splitlines()[-1])
    assert probe == {"code": 1, "parser": False, "rules": False}
    assert json.loads(done.stdout[: done.stdout.rindex("\n{")]) == json.loads(first.out)

    edited = project / "migrations" / f"{V2}_index_email.sql"
    edited.write_text(edited.read_text().replace(BLOCKING, "VACUUM FULL users;"))
    after = run_cli(capsys, project, None, "validate", "--json")
    codes = [f["code"] for f in json.loads(after.out)["findings"]]
    assert "require-concurrent-index" not in codes and "vacuum-full" in codes
    settings = pgshift.load_settings({"migrations_dir": str(project / "migrations")}, cwd=project)
    report = pgshift.validate(settings, fixes=True)
    assert [(f.code, f.line) for f in report.findings] == [
        (f["code"], f["line"]) for f in json.loads(after.out)["findings"]
    ]


def test_paths_are_shown_relative_exactly_as_relpath_would() -> None:
    """The prefix shortcut of _shown agrees with os.path.relpath on every kind of path."""
    import os
    import random

    from pgshift.cli.validate import _shown
    from pgshift.lint.finding import Finding

    pick = random.Random(3)
    parts = ["a", "b", ".", "..", "m.sql", ".hidden", ""]
    for _ in range(20000):
        cwd = pick.choice(["/", "/tmp", "/tmp/a", "/tmp/a/b"])
        path = "/" + "/".join(pick.choice(parts) for _ in range(pick.randint(1, 5)))
        shown = _shown(Finding("c", "error", path, 1, 1, "m", "h", category="file"), cwd).file
        rel = os.path.relpath(path, cwd)
        assert shown == (path if rel.startswith("..") else rel), (cwd, path)
