"""Every command of docs/fleets.md, run in its order on a fleet like the page's.

Indented `pgshift fleet ...` lines are the commands; a `# exit N` line after one is its
expected exit code. The two that need a control database run last, once the fleet is at head.
"""

from __future__ import annotations

import re
import shlex
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.plugins.pg import PgServer
from tests.plugins.project import ProjectMaker, migration_pair
from tests.support import query, run_cli

DOC = Path(__file__).resolve().parents[2] / "docs" / "fleets.md"
V1, V2 = "20250101000000", "20250102000000"


def doc_commands() -> list[tuple[list[str], int | None]]:
    lines = DOC.read_text(encoding="utf-8").splitlines()
    found: list[tuple[list[str], int | None]] = []
    for i, line in enumerate(lines):
        if not line.startswith("    pgshift fleet "):
            continue
        expected = None
        if i + 1 < len(lines):
            match = re.match(r"\s+# exit (\d+)", lines[i + 1])
            expected = int(match.group(1)) if match else None
        found.append((shlex.split(line.strip())[1:], expected))
    return found


@pytest.fixture
def fleet_dbs(pg_server: PgServer) -> Iterator[list[str]]:
    names = [f"docs_{uuid.uuid4().hex[:12]}" for _ in range(3)]  # two targets and the control
    for name in names:
        pg_server.create_database(name)
    try:
        yield [pg_server.url(n) for n in names]
    finally:
        for name in names:
            pg_server.drop_database(name)


def test_every_command_of_the_fleets_page(
    make_project: ProjectMaker,
    db_url: str,
    fleet_dbs: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    make_project(migration_pair(V1, "items", "CREATE TABLE items (id int);"))
    root = make_project(migration_pair(V2, "more", "ALTER TABLE items ADD COLUMN n int;"))
    db0, db1, control = fleet_dbs
    rows: list[tuple[str, str, str | None, str]] = [
        ("eu-1", db0, None, "canary"),
        ("us-1", db1, None, ""),
    ]
    rows += [(t, db_url, t, "") for t in ("acme", "globex", "initech")]
    text = ""
    for name, url, schema, labels in rows:
        text += f'[[target]]\nname = "{name}"\nurl = "{url}"\n'
        text += f'schema = "{schema}"\n' if schema else ""
        text += f'labels = ["{labels}"]\n' if labels else ""
    (root / "fleet.toml").write_text(text, encoding="utf-8")
    query(db_url, "CREATE SCHEMA globex; CREATE TABLE globex.items (other text)")
    query(control, "CREATE TABLE tenants (name text, url text, schema text, labels text[])")
    for name, url, schema, labels in rows:
        query(
            control,
            "INSERT INTO tenants VALUES (%s, %s, %s, %s)",
            [name, url, schema, [labels] if labels else []],
        )

    commands = doc_commands()
    assert len(commands) >= 7
    later = [c for c in commands if any("$CONTROL_URL" in a for a in c[0])]
    fixed = False
    for argv, expected in [c for c in commands if c not in later]:
        if argv[:2] == ["fleet", "up"] and expected == 0 and not fixed:
            query(db_url, "DROP TABLE globex.items")  # "fix the cause on globex"
            fixed = True
        result = run_cli(capsys, root, None, *argv)
        assert result.code == (expected if expected is not None else 0), (argv, result.err)
    for shown, expected in later:
        argv = [control if a == "$CONTROL_URL" else a for a in shown]
        result = run_cli(capsys, root, None, *argv)
        assert result.code == (expected or 0), (shown, result.out, result.err)
    for schema in ("acme", "globex", "initech"):
        assert query(db_url, f"SELECT count(*) FROM {schema}_pgshift.applied") == [(2,)]
