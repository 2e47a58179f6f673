"""Where an adopted history ends for the linter: `lint_since`, written into the project's config.

`import` and `baseline` set it (SPEC 9), so that `validate` treats findings in the migrations up
to it as history rather than errors: those files ran years ago and can never change. It goes
into the file the project already reads its settings from (pgshift.toml, or the `[tool.pgshift]`
table of pyproject.toml), else into a new pgshift.toml at the project's root, which leaves the
project's root where it was (config.find_project_root finds the same folder first).

There is no TOML writer in the standard library, so the file is edited as text, one line (the
key's, or a new one under its table), and the edit is proven before it is saved: the new text
must parse with tomllib to exactly the old document with that one key set. Anything else
(a multi-line value, a dotted or inline table that holds the settings) is not written, and the
caller says how to set it by hand. A value already later than the new one is kept: the history
an earlier import or baseline declared does not shrink.
"""

from __future__ import annotations

import copy
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pgshift.config import find_project_root

KEY = "lint_since"
_TOOL_TABLE = ("tool", "pgshift")

# TOML structure lines, not SQL: a table header `[a.b]`, an array of tables `[[a]]`, the key.
_TABLE_RE = re.compile(r"\s*\[\s*([^\[\]]+?)\s*\]\s*(?:#.*)?")
_ARRAY_RE = re.compile(r"\s*\[\[")
_KEY_RE = re.compile(rf"\s*{KEY}\s*=")


@dataclass(frozen=True)
class LintSince:
    """What setting `lint_since` came to: the file, the value it now holds, or the problem."""

    file: Path | None
    version: str | None
    problem: str | None = None  # why it was not written; the caller tells the user


class _Unsafe(ValueError):
    """The one-line edit would change more than the key: not written."""


def _table_path(path: Path, data: dict[str, Any]) -> tuple[str, ...]:
    """Where pgshift reads its settings in ``path`` (config._file_table's rule)."""
    tool = data.get("tool")
    if path.name == "pgshift.toml" and not (isinstance(tool, dict) and "pgshift" in tool):
        return ()
    return _TOOL_TABLE


def _table_of(data: dict[str, Any], table: tuple[str, ...]) -> dict[str, Any] | None:
    node: Any = data
    for part in table:
        node = node.get(part) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


def _header(line: str) -> tuple[str, ...] | None:
    match = _TABLE_RE.fullmatch(line.rstrip("\r\n"))
    if match is None:
        return None
    return tuple(part.strip().strip('"').strip("'") for part in match.group(1).split("."))


def _locate(lines: list[str], table: tuple[str, ...]) -> tuple[int | None, int | None, int | None]:
    """(line of the key in ``table``, line of ``table``'s header, line of the first header)."""
    current: tuple[str, ...] | None = ()
    key_at = header_at = first_table = None
    for i, line in enumerate(lines):
        array = _ARRAY_RE.match(line) is not None
        named = None if array else _header(line)
        if named is not None or array:
            first_table = i if first_table is None else first_table
            current = named
            header_at = i if named == table else header_at
        elif current == table and _KEY_RE.match(line):
            key_at = i
    return key_at, header_at, first_table


def set_key(text: str, table: tuple[str, ...], value: str) -> str:
    """``text`` with ``lint_since = "value"`` in ``table`` (() is the top level), proven.

    Raises _Unsafe unless the result parses to the old document with only that key set.
    """
    expected = copy.deepcopy(tomllib.loads(text))
    node = expected
    for part in table:
        node = node.setdefault(part, {})
    node[KEY] = value
    newline = "\r\n" if "\r\n" in text else "\n"
    line_new = f'{KEY} = "{value}"{newline}'
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += newline
    key_at, header_at, first_table = _locate(lines, table)
    if key_at is not None:
        lines[key_at] = line_new
    elif not table:
        lines.insert(len(lines) if first_table is None else first_table, line_new)
    elif header_at is not None:
        lines.insert(header_at + 1, line_new)
    else:
        lines += [newline if lines else "", f"[{'.'.join(table)}]{newline}", line_new]
    new = "".join(lines)
    try:
        proven = tomllib.loads(new) == expected
    except tomllib.TOMLDecodeError:
        proven = False
    if not proven:
        raise _Unsafe("the edit would change more than that key")
    return new


def _save(path: Path, text: str) -> None:
    """Replace ``path`` whole (its mode kept), or create it."""
    temporary = path.with_name(f".{path.name}.pgshift")
    mode = path.stat().st_mode & 0o7777 if path.exists() else None
    with temporary.open("w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    if mode is not None:
        os.chmod(temporary, mode)
    os.replace(temporary, path)


def write_lint_since(project_root: Path, version: str) -> LintSince:
    """Set the project's `lint_since` to ``version`` unless it already names a later one."""
    root, config_file = find_project_root(project_root)
    path = config_file or root / "pgshift.toml"
    try:
        text = path.read_bytes().decode("utf-8") if path.exists() else ""
        data = tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return LintSince(None, None, f"{path}: cannot read it: {exc}")
    table = _table_path(path, data)
    held = (_table_of(data, table) or {}).get(KEY)
    if isinstance(held, str) and held >= version:
        return LintSince(path, held)
    try:
        _save(path, set_key(text, table, version))
    except _Unsafe as exc:
        return LintSince(None, None, f"{path}: not written, {exc}")
    except OSError as exc:
        return LintSince(None, None, f"{path}: cannot write it: {exc.strerror or exc}")
    return LintSince(path, version)
