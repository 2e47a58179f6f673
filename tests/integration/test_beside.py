"""Work shared with a forked helper: the same results as one process alone, or a fallback.

These fork real processes (pgshift/beside.py); no database is needed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from tests.plugins.project import migration_text, rollback_text

from pgshift import beside, config
from pgshift.concurrency import Helper, Pending
from pgshift.lint.engine import LINT_BESIDE_MIN, Linter
from pgshift.lint.finding import Finding
from pgshift.source.loader import BESIDE_MIN_FILES, LoadResult, read_migrations
from pgshift.source.statement_cache import StatementCache

T = TypeVar("T")
COUNT = max(BESIDE_MIN_FILES, LINT_BESIDE_MIN) + 60  # migrations: above both thresholds


class _Failed:
    """A helper whose work never comes back, like a child that was killed."""

    def result(self) -> None:
        return None

    def cancel(self) -> None:
        pass


def failing_helper(work: Callable[[], T]) -> Pending[T] | None:
    return _Failed()


def _body(i: int) -> tuple[str, str]:
    """Statements whose findings depend on earlier migrations, spread over the whole range."""
    kind = i % 4
    if kind == 0:
        return (
            f"ALTER TABLE users ADD CONSTRAINT c{i}_nn CHECK (c{i} IS NOT NULL) NOT VALID;",
            f"ALTER TABLE users DROP CONSTRAINT c{i}_nn;",
        )
    if kind == 1:  # validates the check of the migration before: SET NOT NULL is cheap later
        return (
            f"ALTER TABLE users VALIDATE CONSTRAINT c{i - 1}_nn;",
            "SELECT 1;",
        )
    if kind == 2:  # proven by the check two migrations back; c{i} itself is not
        return (
            f"ALTER TABLE users ALTER COLUMN c{i - 2} SET NOT NULL;\n"
            f"ALTER TABLE users ALTER COLUMN c{i} SET NOT NULL;",
            f"ALTER TABLE users ALTER COLUMN c{i - 2} DROP NOT NULL;",
        )
    return (f"CREATE INDEX users_c{i}_idx ON users (c{i});", f"DROP INDEX users_c{i}_idx;")


@pytest.fixture(scope="module")
def big_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("beside") / "migrations"
    folder.mkdir()
    for i in range(COUNT):
        version = f"2025{1 + i // 28 // 24 // 28:02d}{1 + i // 24 // 28 % 28:02d}" + (
            f"{i // 28 % 24:02d}{i % 28:02d}00"
        )
        name = f"{version}_change_{i}"
        sql, undo = _body(i)
        (folder / f"{name}.sql").write_text(migration_text(version, f"change {i}", sql))
        (folder / f"{name}_rollback.sql").write_text(rollback_text(version, f"change_{i}", undo))
    # One broken file in the later half, which the helper parses: its problem must come back.
    broken = sorted(folder.glob("*_rollback.sql"))[-3]
    broken.write_text(broken.read_text() + "\nDROP TABLEE nothing;\n")
    return folder


class Counting:
    """beside.start, counting the work that really came back from a child."""

    def __init__(self) -> None:
        self.returned = 0

    def __call__(self, work: Callable[[], T]) -> Pending[T] | None:
        started = beside.start(work)
        assert started is not None
        child: Pending[T] = started
        outer = self

        class Counted:
            def result(self) -> T | None:
                value = child.result()
                outer.returned += value is not None
                return value

            def cancel(self) -> None:
                child.cancel()

        return Counted()


def _read(folder: Path, helper: Helper | None) -> LoadResult:
    return read_migrations(folder, StatementCache(), helper)


def test_a_forked_helper_returns_its_value_or_none() -> None:
    started = beside.start(lambda: sum(range(10)))
    assert started is not None and started.result() == 45

    def boom() -> int:
        raise RuntimeError("the work failed")

    failed = beside.start(boom)
    assert failed is not None and failed.result() is None

    slow = beside.start(lambda: __import__("time").sleep(60))
    assert slow is not None
    slow.cancel()  # killed and reaped: no child is left behind
    assert slow.result() is None
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


def test_helper_is_refused_when_told_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGSHIFT_WORKERS", "1")
    assert beside.helper() is None
    assert config.workers({}) == 2 and config.workers({"PGSHIFT_WORKERS": " 4 "}) == 4


@pytest.mark.parametrize("value", ["0", "two", "-1", "1.5"])
def test_a_bad_number_of_workers_is_a_configuration_error(
    value: str,
    big_folder: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pgshift.cli.main import main
    from pgshift.errors import ConfigError

    with pytest.raises(ConfigError, match="PGSHIFT_WORKERS"):
        config.workers({"PGSHIFT_WORKERS": value})
    monkeypatch.setenv("PGSHIFT_WORKERS", value)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    for cache in (big_folder.parent / ".pgshift").glob("cache/*"):
        cache.unlink()  # a cold read: the helper is asked for
    monkeypatch.chdir(big_folder.parent)
    assert main(["validate", "-q", "--dir", str(big_folder)]) == 2
    assert f"PGSHIFT_WORKERS={value!r}" in capsys.readouterr().err


def test_the_loader_reads_the_same_with_a_helper(big_folder: Path) -> None:
    alone = _read(big_folder, None)
    helper = Counting()
    shared = _read(big_folder, helper)
    assert helper.returned == 1  # half of the files were parsed by the child
    assert shared == alone
    assert len(alone.migrations) == COUNT and len(alone.problems) == 1
    assert _read(big_folder, failing_helper) == alone


def test_the_linter_finds_the_same_with_a_helper(big_folder: Path) -> None:
    loaded = _read(big_folder, beside.start)  # half of the trees did not come back
    bad = frozenset(p.file for p in loaded.problems)
    alone = Linter(16).lint_migrations(loaded.migrations, bad)
    helper = Counting()
    shared = Linter(16).lint_migrations(loaded.migrations, bad, helper=helper)
    assert helper.returned == 1  # the later migrations were linted by the child
    assert shared == alone
    assert [f.fix for f in shared] == [f.fix for f in alone]
    assert Linter(16).lint_migrations(loaded.migrations, bad, helper=failing_helper) == alone
    # The later SET NOT NULLs are judged with what the earlier migrations validated.
    proven = [f for f in alone if f.code == "set-not-null"]
    assert len(proven) == len([i for i in range(COUNT) if i % 4 == 2])


def test_validate_prints_the_same_with_and_without_a_second_process(big_folder: Path) -> None:
    """The command a user runs: forks when it can; PGSHIFT_WORKERS=1 does everything alone."""
    outputs = []
    for workers in ("", "1"):
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DB_URL")}
        env["PGSHIFT_WORKERS"] = workers
        for cache in (big_folder.parent / ".pgshift").glob("cache/*"):
            cache.unlink()
        done = subprocess.run(
            [sys.executable, "-m", "pgshift", "validate", "--json", "--dir", str(big_folder)],
            cwd=big_folder.parent, env=env, capture_output=True, text=True, timeout=300,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert done.returncode == 1, done.stderr
        outputs.append(json.loads(done.stdout))
    assert outputs[0] == outputs[1]
    assert {f["code"] for f in outputs[0]["findings"]} >= {"set-not-null", "invalid-file"}


def test_a_failure_here_takes_the_helper_down_with_it(
    big_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error in this process's own share must not leave a child waiting to be read."""
    loaded = _read(big_folder, beside.start)
    first = str(loaded.migrations[0].path)

    class Broken(Linter):
        def lint_file(self, text: str, file: str, *args: object, **kwargs: object) -> list[Finding]:
            if file == first:
                raise RuntimeError("a bug in a rule")
            return super().lint_file(text, file, *args, **kwargs)  # type: ignore[arg-type]

    with pytest.raises(RuntimeError, match="a bug in a rule"):
        Broken(16).lint_migrations(loaded.migrations, helper=beside.start)
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)

    import pgshift.source.loader

    real = pgshift.source.loader.parse_header  # type: ignore[attr-defined]

    def parse_header(text: str, file: str, **kwargs: bool) -> object:
        if file.endswith(Path(first).name):
            raise RuntimeError("cannot parse")
        return real(text, file, **kwargs)

    monkeypatch.setattr(pgshift.source.loader, "parse_header", parse_header)
    with pytest.raises(RuntimeError, match="cannot parse"):
        _read(big_folder, beside.start)
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


def test_linting_while_reading_with_a_helper_finds_the_same(big_folder: Path) -> None:
    """The helper learns the earlier forward files, lints its own while parsing them, and
    sends the passes back; the findings equal those of linting after reading."""
    from pgshift.lint.ahead import LintAhead

    helper = Counting()
    ahead = LintAhead(16)
    loaded = read_migrations(big_folder, StatementCache(), helper, ahead)
    assert helper.returned == 1
    bad = frozenset(p.file for p in loaded.problems)
    linted = ahead.findings(loaded.migrations, bad)
    assert linted is not None
    after = Linter(16).lint_migrations(loaded.migrations, bad)
    assert [f for found in linted for f in found] == after
    assert [f.fix for found in linted for f in found] == [f.fix for f in after]

    failed = LintAhead(16)  # the helper's files were never linted here: it declines
    again = read_migrations(big_folder, StatementCache(), failing_helper, failed)
    assert again == loaded
    assert failed.findings(again.migrations, bad) is None


def test_linting_only_the_planned_migrations_with_a_helper_finds_the_same(
    big_folder: Path,
) -> None:
    """`up` lints its planned files with a helper too; the applied ones are learned from."""
    loaded = _read(big_folder, None)
    planned = {m.version for m in loaded.migrations[len(loaded.migrations) // 3 :]}
    alone = Linter(16).lint_migrations(loaded.migrations, only=planned)
    helper = Counting()
    shared = Linter(16).lint_migrations(loaded.migrations, only=planned, helper=helper)
    assert helper.returned == 1 and shared == alone
    assert {f.code for f in alone} >= {"set-not-null", "require-concurrent-index"}


@pytest.mark.parametrize(
    ("files", "cpus"),
    [
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu.max": "100000 100000\n"}, 1),
        ({"cpu.max": "150000 100000\n"}, 1),
        ({"cpu.max": "400000 100000\n"}, 4),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "200000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 2),
        ({}, None),
    ],
)
def test_a_container_cpu_limit_counts_as_the_cores_there_are(
    tmp_path: Path, files: dict[str, str], cpus: int | None
) -> None:
    """A Kubernetes CPU limit of one: a helper would only take turns with this process."""
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert beside.cgroup_cpus(str(tmp_path)) == cpus
