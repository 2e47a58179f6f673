"""`pgshift completion bash|zsh|fish` (issue 17, item 17): generated from the parser, so every
command, action and option the command line accepts is offered. bash is sourced and asked;
zsh and fish scripts are parsed by their shells where installed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pgshift.cli.completion import Command, command_tree
from pgshift.cli.main import build_parser, main


def _script(shell: str, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(["completion", shell]) == 0
    return capsys.readouterr().out


def _every(node: Command) -> list[Command]:
    found = [node]
    for child in node.children:
        found += _every(child)
    return found


TREE = command_tree(build_parser())
COMMANDS = [n for n in _every(TREE) if n.path]


def _complete(script: Path, *words: str) -> list[str]:
    """What bash offers for the last of ``words`` (the word under the cursor)."""
    line = " ".join(f"'{w}'" for w in ("pgshift", *words))
    program = (
        f"source {script}\n"
        f"COMP_WORDS=({line}); COMP_CWORD={len(words)}\n"
        '_pgshift; printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    done = subprocess.run(["bash", "-c", program], capture_output=True, text=True, check=True)
    return [w for w in done.stdout.splitlines() if w]


def test_bash_registers_the_function_and_completes_commands_options_and_choices(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bash = shutil.which("bash")
    assert bash is not None
    script = tmp_path / "pgshift.bash"
    script.write_text(_script("bash", capsys), encoding="utf-8")
    checked = subprocess.run([bash, "-n", str(script)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    registered = subprocess.run(
        [bash, "-c", f"source {script} && complete -p pgshift"], capture_output=True, text=True
    )
    assert registered.returncode == 0, registered.stderr
    assert registered.stdout.strip() == "complete -F _pgshift pgshift"

    assert _complete(script, "sta") == ["status"]
    assert _complete(script, "his") == ["history"]
    assert set(_complete(script, "rollback", "")) >= {"safe", "to-version", "list-backups"}
    assert _complete(script, "rollback", "safe", "--co") == ["--count"]
    assert _complete(script, "--dir", "x", "create", "y", "--risk-level", "") == [
        "low",
        "medium",
        "high",
    ]
    assert _complete(script, "mark", "20250101000000", "--not") == ["--not-applied"]
    assert _complete(script, "completion", "") == ["bash", "zsh", "fish"]
    # `server status` is not `status`: its own words, no --check.
    assert "--check" not in _complete(script, "server", "status", "--")
    assert "--check" in _complete(script, "status", "--")


def test_bash_offers_every_command_and_option_of_the_parser(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "pgshift.bash"
    script.write_text(_script("bash", capsys), encoding="utf-8")
    for node in COMMANDS:
        parent, word = node.path[:-1], node.path[-1]
        assert word in _complete(script, *parent, word), node.path
    for node in (TREE, *COMMANDS[:5]):
        offered = set(_complete(script, *node.path, "-"))
        assert {o for opts in node.options for o in opts if o.startswith("-")} <= offered


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_scripts_parse_and_name_every_command(
    shell: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = _script(shell, capsys)
    script = tmp_path / f"pgshift.{shell}"
    script.write_text(text, encoding="utf-8")
    for node in COMMANDS:
        assert node.path[-1] in text, node.path
    for node in COMMANDS:
        for opts in node.options:
            long = [o for o in opts if o.startswith("--")]
            if long:
                assert long[0][2:] in text, (node.path, long[0])
    exe = shutil.which(shell)
    if exe is not None:  # absent here, maybe present elsewhere: then the shell parses it too
        check = [exe, "-n", str(script)] if shell == "zsh" else [exe, "--no-execute", str(script)]
        parsed = subprocess.run(check, capture_output=True, text=True)
        assert parsed.returncode == 0, parsed.stderr
    if shell == "zsh":
        assert text.startswith("#compdef pgshift") and "bashcompinit" in text
    else:
        assert "complete -c pgshift -n '__fish_use_subcommand' -a history" in text
        assert "-l risk-level -x -a 'low medium high'" in text
