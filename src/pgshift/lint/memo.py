"""A memo of each migration's findings, keyed by everything those findings depend on.

Why a chain of keys: a migration's findings depend on its own two files and on what every
earlier migration in plan order did to the schema (the project state the rules consult), and
on nothing else but the rules, the parser and the options. So migration i's key is the digest
of migration i-1's key and of migration i's identity and texts: a hit stands for exactly the
same prefix of the project, and an edit anywhere invalidates that migration and all after it,
never fewer. Appending a migration, the usual change, re-lints only the new one.

The module is pure and light: it imports no parser, so a run where every key hits never loads
pglast or the rules. The caller reads and writes the bytes (project_files.py).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from typing import Any

from pgshift.lint.finding import CATEGORIES, SEVERITIES, Finding, Fix
from pgshift.model import Migration, RollbackScript
from pgshift.source.statement_cache import code_version, text_key

FORMAT = 2  # 2: findings carry their category; severity may be a note


def lint_code_version() -> str:
    """The identity of the rules, the engine, the parser and the reader, by file size and time.

    A new or edited rule module changes it, so a memo written by other rules is never used.
    """
    here = os.path.dirname(os.path.abspath(__file__))
    parts = [code_version()]
    for folder in (here, os.path.join(here, "rules")):
        try:
            with os.scandir(folder) as entries:
                for entry in sorted(entries, key=lambda e: e.name):
                    if entry.name.endswith(".py"):
                        info = entry.stat()
                        parts.append(f"{entry.name}:{info.st_size}:{info.st_mtime_ns}")
        except OSError:
            parts.append(f"{folder}:unreadable")
    return ";".join(parts)


def _script_identity(script: Migration | RollbackScript | None, bad_files: frozenset[str]) -> str:
    if script is None:
        return "-"
    file = str(script.path)
    flag = "!" if file in bad_files else ""
    return f"{file}\x1f{text_key(script.text, script.text_checksum or None)}{flag}"


def chain_keys(
    migrations: Sequence[Migration],
    bad_files: frozenset[str],
    *,
    pg_major: int,
    fixes: bool,
) -> list[str]:
    """One key per migration, in plan order (see the module's docstring)."""
    previous = hashlib.sha256(
        json.dumps([FORMAT, lint_code_version(), pg_major, fixes]).encode()
    ).hexdigest()
    keys = []
    for m in migrations:
        identity = "\x1e".join(
            [
                previous,
                m.version,
                m.description,
                ",".join(m.dependencies),
                _script_identity(m, bad_files),
                _script_identity(m.rollback, bad_files),
            ]
        )
        previous = hashlib.sha256(identity.encode("utf-8", "surrogatepass")).hexdigest()
        keys.append(previous)
    return keys


class LintMemo:
    """Findings by chain key; keeps only the entries this run looked up or stored."""

    def __init__(self, entries: dict[str, Any] | None = None) -> None:
        self._entries = entries or {}
        self._kept: dict[str, Any] = {}
        self.changed = False

    @classmethod
    def from_bytes(cls, data: bytes | None) -> LintMemo:
        """The memo in ``data``; an absent, foreign or damaged one is an empty memo."""
        if not data:
            return cls()
        try:
            document = json.loads(data)
            entries = document.get("entries")
            if document.get("format") != FORMAT or not isinstance(entries, dict):
                return cls()
            return cls(entries)
        except (ValueError, AttributeError):
            return cls()

    def to_bytes(self) -> bytes:
        document = {"format": FORMAT, "entries": self._kept}
        return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()

    def get(self, key: str) -> list[Finding] | None:
        """The findings stored under ``key``, or None when absent or unreadable."""
        rows = self._entries.get(key)
        if rows is None:
            return None
        try:
            found = [_decode(row) for row in rows]
        except (ValueError, TypeError, IndexError):
            return None
        self._kept[key] = rows
        return found

    def recall(self, keys: Sequence[str]) -> list[Finding] | None:
        """Every finding of the migrations under ``keys``, or None when one of them is missing."""
        found: list[Finding] = []
        for key in keys:
            entry = self.get(key)
            if entry is None:
                return None
            found.extend(entry)
        self.finish()
        return found

    def put(self, key: str, findings: Iterable[Finding]) -> None:
        rows = [_encode(f) for f in findings]
        if self._entries.get(key) != rows:
            self.changed = True
        self._entries[key] = rows
        self._kept[key] = rows

    def keep_all(self) -> None:
        """Keep every entry, used or not: for a run that looked up only some migrations."""
        self._kept = dict(self._entries)

    def finish(self) -> None:
        """Mark the memo changed when entries this run no longer uses are to be dropped."""
        if set(self._entries) != set(self._kept):
            self.changed = True


def _encode(f: Finding) -> list[Any]:
    fix = None
    if f.fix is not None:
        x = f.fix
        fix = [x.summary, x.original, x.replacement, x.hunks, x.follow_up, x.follow_up_name]
    return [f.code, f.severity, f.category, f.file, f.line, f.column, f.message, f.help, fix]


def _decode(row: list[Any]) -> Finding:
    code, severity, category, file, line, column, message, help_text, fix = row
    if severity not in SEVERITIES or category not in CATEGORIES:
        raise ValueError("a damaged entry")
    made = None
    if fix is not None:
        summary, original, replacement, hunks, follow_up, follow_up_name = fix
        made = Fix(summary, original, replacement, hunks, follow_up, follow_up_name)
    return Finding(
        str(code),
        severity,
        str(file),
        int(line),
        int(column),
        str(message),
        str(help_text),
        made,
        category=category,
    )
