"""docs/ci.md, run as written: the pre-commit hook (`pre-commit try-repo`, `run`, a real `git
commit`) and every `run:` step of the composite GitHub Action (`action.yml`) on sample projects.

Both install pgshift from a copy of this repository into an environment of their own with pip,
as a user's machine or a GitHub runner does. To keep the suite fast those environments see this
one's site-packages (VIRTUALENV_SYSTEM_SITE_PACKAGES, which pre-commit's virtualenv honours), so
pip finds the dependencies already there and builds only pgshift itself, with the setuptools
already installed; the copy, pre-commit's cache and the action's Python are made once per
session. Together about 25 s of CPU (a minute of wall time on a busy 2-core machine).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.plugins.project import migration_pair as pair

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "ci.md"
V1, V2 = "20250101000000", "20250102000000"
GOOD = pair(V1, "create users", "CREATE TABLE users (id bigint PRIMARY KEY, email text);")
#: A blocking index build on a table an earlier migration made: an error finding.
BAD = pair(V2, "index users email", "CREATE INDEX users_email ON users (email);")
#: What pgshift must not see from the test's own environment: the source tree on PYTHONPATH
#: (the installed package is what is under test) and a database (validate needs none).
STRIPPED = ("PYTHONPATH", "DATABASE_URL", "PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE")
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}


def yaml_blocks() -> list[Any]:
    """Every ```yaml block of docs/ci.md, parsed."""
    return [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", PAGE.read_text(), re.S)]


def bash_lines() -> list[str]:
    """Every line of the page's ```bash blocks."""
    found = re.findall(r"```bash\n(.*?)```", PAGE.read_text(), re.S)
    return [line for block in found for line in block.strip().splitlines()]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in STRIPPED}
    fast = {
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "VIRTUALENV_SYSTEM_SITE_PACKAGES": "1",
        "PIP_NO_BUILD_ISOLATION": "0",  # pip's spelling of --no-build-isolation: setuptools is here
    }
    return {**env, **fast, **GIT_IDENTITY, **extra}


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=clean_env(), capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@dataclass(frozen=True)
class RepoCopy:
    """This repository's working tree (uncommitted changes included) as a git repo at one commit."""

    path: Path
    rev: str


@pytest.fixture(scope="session")
def repo_copy(tmp_path_factory: pytest.TempPathFactory) -> RepoCopy:
    dest = tmp_path_factory.mktemp("pgshift-repo")
    try:
        listed = git(ROOT, "ls-files", "-co", "--exclude-standard", "-z").split("\0")
        names = [n for n in listed if n and (ROOT / n).is_file()]
    except (subprocess.CalledProcessError, FileNotFoundError):  # not a git checkout
        names = [
            str(p.relative_to(ROOT))
            for p in ROOT.rglob("*")
            if p.is_file() and not {".git", ".pgshift", "__pycache__"} & set(p.parts)
        ]
    for name in names:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, dest / name)
    git(dest, "init", "-q")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "pgshift as tested")
    return RepoCopy(dest, git(dest, "rev-parse", "HEAD"))


@pytest.fixture(scope="session")
def pre_commit_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pre-commit's cache for the session: the hook's environment is built once."""
    return tmp_path_factory.mktemp("pre-commit-home")


def sample_project(root: Path, files: dict[str, str], subdir: str = "migrations") -> Path:
    """A git repository with ``files`` in ``subdir``, staged."""
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q")
    (root / ".gitignore").write_text(".pgshift/\n")
    write(root, files, subdir)
    return root


def write(root: Path, files: dict[str, str], subdir: str = "migrations") -> None:
    folder = root / subdir
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    git(root, "add", "-A")


def pre_commit(cwd: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", *args],
        cwd=cwd,
        env=clean_env(PRE_COMMIT_HOME=str(home)),
        capture_output=True,
        text=True,
        timeout=600,
    )


# -- the pre-commit hook ------------------------------------------------------------------------


def test_the_hook_is_declared_as_the_page_says() -> None:
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    (hook,) = hooks
    assert hook["id"] == "pgshift-validate" and hook["language"] == "python"
    assert hook["entry"] == "pgshift validate" and hook["pass_filenames"] is False
    assert re.search(hook["files"], "migrations/20250101000000_x.sql")
    assert not re.search(hook["files"], "README.md")


def test_pre_commit_try_repo_runs_the_hook_on_a_sample_project(
    tmp_path: Path, repo_copy: RepoCopy, pre_commit_home: Path
) -> None:
    """Once, failing: try-repo builds the hook's environment anew on every call (a store of
    its own), so the passing case is left to the configured hook below, which is cached."""
    project = sample_project(tmp_path / "app", {**GOOD, **BAD})
    args = ("try-repo", str(repo_copy.path), "pgshift-validate", "--ref", repo_copy.rev)
    failed = pre_commit(project, pre_commit_home, *args, "--all-files")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert re.search(r"pgshift validate\.+Failed", failed.stdout), failed.stdout
    assert "require-concurrent-index" in failed.stdout
    assert f"{V2}_index_users_email.sql" in failed.stdout


def test_the_pages_pre_commit_config_stops_a_commit_of_a_blocking_migration(
    tmp_path: Path, repo_copy: RepoCopy, pre_commit_home: Path
) -> None:
    (config,) = [b for b in yaml_blocks() if isinstance(b, dict) and "repos" in b]
    (repo,) = config["repos"]
    assert repo["repo"] == "https://github.com/pgshift/pgshift"
    assert repo["hooks"] == [{"id": "pgshift-validate"}]
    # The same configuration, pointing at this repository as it is (no network for the source).
    repo.update(repo=str(repo_copy.path), rev=repo_copy.rev)
    project = sample_project(tmp_path / "app", GOOD)
    (project / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config))
    git(project, "add", "-A")
    commands = [line for line in bash_lines() if line.startswith("pre-commit ")]
    assert commands == ["pre-commit install", "pre-commit run pgshift-validate --all-files"]
    for command in commands:
        done = pre_commit(project, pre_commit_home, *command.split()[1:])
        assert done.returncode == 0, command + "\n" + done.stdout + done.stderr
    git(project, "commit", "-q", "-m", "users")  # the installed hook runs, and passes

    write(project, BAD)
    refused = subprocess.run(
        ["git", "commit", "-m", "an index"],
        cwd=project,
        env=clean_env(PRE_COMMIT_HOME=str(pre_commit_home)),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "require-concurrent-index" in refused.stdout + refused.stderr
    assert git(project, "log", "--format=%s") == "users"  # the commit was stopped


# -- the GitHub Action -----------------------------------------------------------------------------

EXPRESSION = re.compile(r"\$\{\{\s*([^}]*?)\s*\}\}")


@dataclass(frozen=True)
class StepRun:
    name: str
    code: int
    out: str
    err: str


@pytest.fixture(scope="session")
def action_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What actions/setup-python gives the later steps: a `python` first on PATH (a venv)."""
    home = tmp_path_factory.mktemp("setup-python")
    subprocess.run(
        [sys.executable, "-m", "virtualenv", "-q", str(home)], env=clean_env(), check=True
    )
    return home / "bin"


def action() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "action.yml").read_text())
    assert isinstance(data, dict)
    return data


def expand(text: str, inputs: dict[str, str], action_path: Path) -> str:
    """Evaluate the few `${{ }}` expressions the action's env uses; any other fails the test."""

    def value(match: re.Match[str]) -> str:
        expr = match.group(1)
        if expr.startswith("inputs."):
            return inputs[expr.removeprefix("inputs.")]
        if expr == "github.action_path":
            return str(action_path)
        raise AssertionError(f"action.yml uses an expression the test cannot evaluate: {expr}")

    return EXPRESSION.sub(value, text)


def run_action(
    workspace: Path, with_: dict[str, str], action_path: Path, python_bin: Path
) -> Iterator[StepRun]:
    """Each step of action.yml in order, as a runner would: `uses:` steps are setup-python
    (the venv stands for it), `run:` steps run in bash with the env the step declares."""
    spec = action()
    assert spec["runs"]["using"] == "composite"
    inputs = {name: str(i.get("default", "")) for name, i in spec["inputs"].items()}
    unknown = set(with_) - set(inputs)
    assert not unknown, f"the workflow passes inputs action.yml does not declare: {unknown}"
    inputs.update({k: str(v) for k, v in with_.items()})
    output = workspace / ".github-output"
    output.touch()
    path = f"{python_bin}{os.pathsep}{os.environ['PATH']}"
    for step in spec["runs"]["steps"]:
        if "uses" in step:
            assert step["uses"].startswith("actions/setup-python@"), step
            continue
        assert "${{" not in step["run"], "inputs reach scripts through env:, never inline"
        assert step["shell"] == "bash"
        env = {k: expand(str(v), inputs, action_path) for k, v in step.get("env", {}).items()}
        script = workspace.parent / "step.sh"
        script.write_text(step["run"])
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            cwd=workspace,
            env=clean_env(PATH=path, GITHUB_OUTPUT=str(output), **env),
            capture_output=True,
            text=True,
            timeout=600,
        )
        yield StepRun(step["name"], done.returncode, done.stdout, done.stderr)
        if done.returncode != 0:
            return  # a failed step ends the job


def workflow_inputs(name: str) -> dict[str, str]:
    """The `with:` of the step of the page's workflow ``name`` that uses this action."""
    (flow,) = [b for b in yaml_blocks() if isinstance(b, dict) and b.get("name") == name]
    steps = flow["jobs"]["validate"]["steps"]
    (uses,) = [s for s in steps if str(s.get("uses", "")).startswith("pgshift/pgshift@")]
    return {k: str(v) for k, v in uses["with"].items()}


def test_the_pages_annotation_workflow_runs_every_step_of_the_action(
    tmp_path: Path, repo_copy: RepoCopy, action_python: Path
) -> None:
    with_ = workflow_inputs("migrations")
    assert with_ == {"migrations-dir": "db/migrations", "format": "github"}
    workspace = sample_project(tmp_path / "workspace", {**GOOD, **BAD}, "db/migrations")
    steps = list(run_action(workspace, with_, repo_copy.path, action_python))
    assert [s.name for s in steps] == ["Check the inputs", "Install pgshift", "pgshift validate"]
    *setup, validate = steps
    assert all(s.code == 0 for s in setup), setup
    assert validate.code == 1, validate.out + validate.err
    annotation = next(x for x in validate.out.splitlines() if "=require-concurrent-index" in x)
    assert annotation.startswith(f"::error file=db/migrations/{V2}_index_users_email.sql,line="), (
        annotation
    )
    assert "title=require-concurrent-index::" in annotation
    where = subprocess.run(
        [str(action_python / "python"), "-c", "import pgshift; print(pgshift.__file__)"],
        env=clean_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.startswith(str(action_python.parent)), "the installed copy ran"

    for name in BAD:
        (workspace / "db" / "migrations" / name).unlink()
    *_, clean = run_action(workspace, with_, repo_copy.path, action_python)
    assert clean.code == 0 and "::error" not in clean.out, clean.out + clean.err


def test_the_pages_sarif_workflow_writes_the_report_even_when_the_check_fails(
    tmp_path: Path, repo_copy: RepoCopy, action_python: Path
) -> None:
    with_ = workflow_inputs("migrations-sarif")
    assert with_["format"] == "sarif"
    workspace = sample_project(tmp_path / "workspace", {**GOOD, **BAD}, "db/migrations")
    *_, validate = run_action(workspace, with_, repo_copy.path, action_python)
    assert validate.code == 1, validate.out + validate.err
    report = json.loads((workspace / with_["sarif-file"]).read_text())
    results = report["runs"][0]["results"]
    assert "require-concurrent-index" in {r["ruleId"] for r in results}
    assert (workspace / ".github-output").read_text() == f"sarif-file={with_['sarif-file']}\n"
    (flow,) = [
        b for b in yaml_blocks() if isinstance(b, dict) and b.get("name") == "migrations-sarif"
    ]
    upload = flow["jobs"]["validate"]["steps"][-1]
    assert upload["if"] == "always()" and upload["with"]["sarif_file"] == with_["sarif-file"]


def test_a_format_the_action_does_not_know_stops_before_installing(
    tmp_path: Path, repo_copy: RepoCopy, action_python: Path
) -> None:
    workspace = sample_project(tmp_path / "workspace", GOOD)
    steps = list(run_action(workspace, {"format": "junit"}, repo_copy.path, action_python))
    assert [s.name for s in steps] == ["Check the inputs"]
    assert steps[0].code == 2
    assert "::error title=pgshift::format must be github or sarif, not 'junit'" in steps[0].out
