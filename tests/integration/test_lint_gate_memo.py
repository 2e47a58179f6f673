"""`up`'s lint gate reads the project's findings memo: files already linted run no rule again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.plugins.project import ProjectMaker, migration_pair

A, B = "20250101000000", "20250102000000"

DRY_RUN = """
import sys
from pgshift.cli.main import main
code = main(["up", "--dry-run", "--json", "--skip-preflight"])
print("PGLAST" if "pglast" in sys.modules else "NO-PGLAST", file=sys.stderr)
sys.exit(code)
"""


def _dry_run(project: Path, db_url: str) -> tuple[list[dict[str, object]], bool]:
    """(the plan's findings, whether the parser was imported) of a fresh `up --dry-run`.

    Without pre-flight: its checks are derived from the pending statements' parse trees, so a
    plan with pending steps parses them whatever the lint memo holds.
    """
    env = {**os.environ, "DATABASE_URL": db_url, "DB_BACKUP_ENABLED": "false"}
    done = subprocess.run(
        [sys.executable, "-c", DRY_RUN],
        cwd=project, env=env, capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    findings: list[dict[str, object]] = json.loads(done.stdout)["findings"]
    return findings, "NO-PGLAST" not in done.stderr


def test_the_second_plan_of_the_same_files_lints_nothing(
    make_project: ProjectMaker, db_url: str
) -> None:
    project: Path = make_project(
        {
            **migration_pair(A, "one", "CREATE TABLE one (id int);"),
            **migration_pair(B, "two", "CREATE INDEX one_id ON one (id);"),
        }
    )
    first, parsed = _dry_run(project, db_url)
    assert parsed and first, "the index on an existing table is worth a finding"
    assert (project / ".pgshift" / "cache" / "lint.json").is_file()
    second, parsed = _dry_run(project, db_url)
    assert second == first
    assert not parsed  # every planned file came from the memo: no parser, no rule

    # An edit changes the key of that migration (and of every later one): linted again.
    path = project / "migrations" / f"{B}_two.sql"
    path.write_text(path.read_text().replace("CREATE INDEX one_id", "CREATE INDEX one_id2"))
    third, parsed = _dry_run(project, db_url)
    assert parsed and third and third != first
