"""The targets of a fleet as values: parsing a targets file, shards, waves and tenant history names.

Pure: no driver, no files opened here (the caller reads the text), so every rule below is tested
from literals. A target is one database (``url``) or one tenant schema in it (``url`` +
``schema``); its identity is (database, schema), which is what its history schema and with it
its runner lock key derive from (db/lock.py).
"""

from __future__ import annotations

import functools
import hashlib
import re
import tomllib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pgshift.errors import InputError, Problem

#: A target name: what a log line, a JSON key, a backup folder and --shard use.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_KEYS = frozenset({"name", "url", "schema", "labels"})
#: The label that puts a target in the canary wave.
CANARY_LABEL = "canary"
_MAX_IDENTIFIER = 63
#: A tenant schema pgshift accepts: a name that reads the same quoted or not in logs, pg_dump
#: patterns and shells, within PostgreSQL's 63 bytes and outside its reserved ``pg_`` prefix.
#: Anything else (``t1; DROP TABLE x``) is far likelier a mistake than a schema.
_SCHEMA = re.compile(r"(?!pg_)[A-Za-z_][A-Za-z0-9_-]{0,62}")


@dataclass(frozen=True)
class TargetSpec:
    """One target of a fleet: a database, or a tenant schema in one (``schema``)."""

    name: str
    url: str
    schema: str | None = None
    labels: tuple[str, ...] = ()

    @property
    def canary(self) -> bool:
        return CANARY_LABEL in self.labels

    def history_schema(self, base: str = "pgshift") -> str:
        """Where this target's history lives: ``base`` for a database, a schema of its own
        for a tenant (see tenant_history_schema)."""
        return base if self.schema is None else tenant_history_schema(base, self.schema)


def tenant_history_schema(base: str, tenant: str) -> str:
    """The history schema of tenant schema ``tenant``: ``<tenant>_<base>`` (``acme_pgshift``).

    One per tenant, so each tenant has its own history and its own lock key, and it sorts
    next to its tenant (dropping a tenant is ``DROP SCHEMA acme, acme_pgshift CASCADE``).
    A name longer than PostgreSQL's 63 bytes is shortened with a hash of the full one, so
    two long tenant names never share a history.
    """
    name = f"{tenant}_{base}"
    if len(name.encode()) <= _MAX_IDENTIFIER:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    keep = _MAX_IDENTIFIER - len(base.encode()) - len(digest) - 2
    head = tenant.encode()[: max(keep, 1)].decode(errors="ignore")
    return f"{head}_{digest}_{base}"


# -- parsing -----------------------------------------------------------------------------------


def parse_targets(text: str, file: str) -> tuple[TargetSpec, ...]:
    """The ``[[target]]`` tables of a targets file; InputError (exit 2) naming file:line:key."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = _decode_line(str(exc))
        problem = Problem(file, line, f"not valid TOML: {exc}")
        raise InputError([problem], where="the targets file") from None
    lines = _TableLines(text)
    problems = [
        Problem(file, lines.key_line(None, key), f"unknown key {key!r} (use [[target]] tables)")
        for key in data
        if key != "target"
    ]
    tables = data.get("target", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        problems.append(Problem(file, 1, "'target' must be an array of tables: [[target]]"))
        tables = []
    specs: list[TargetSpec] = []
    at: list[int] = []
    for index, table in enumerate(tables):
        spec = _spec(table, functools.partial(lines.key_line, index), file, problems)
        if spec is not None:
            specs.append(spec)
            at.append(lines.table_line(index))
    problems += _duplicates(specs, at, file)
    if not tables and not problems:
        problems.append(Problem(file, 1, "no [[target]] tables: the fleet is empty"))
    if problems:
        raise InputError(
            problems, hint="see docs/fleets.md for the targets file", where="the targets file"
        )
    return tuple(specs)


def targets_from_rows(rows: Iterable[Sequence[Any]], source: str) -> tuple[TargetSpec, ...]:
    """Targets from the rows of ``--targets-query`` (name, url[, schema[, labels]]).

    ``labels`` may be a text array or a comma-separated text. Row numbers stand for lines.
    """
    problems: list[Problem] = []
    specs: list[TargetSpec] = []
    at: list[int] = []
    for number, row in enumerate(rows, start=1):
        if len(row) < 2:
            problems.append(Problem(source, number, "a row needs at least name and url columns"))
            continue
        labels = row[3] if len(row) > 3 else None
        if isinstance(labels, str):
            labels = [part.strip() for part in labels.split(",") if part.strip()]
        table = {"name": row[0], "url": row[1], "schema": row[2] if len(row) > 2 else None}
        if labels is not None:
            table["labels"] = list(labels)
        table = {k: v for k, v in table.items() if v is not None}
        spec = _spec(table, functools.partial(_same_line, number), source, problems)
        if spec is not None:
            specs.append(spec)
            at.append(number)
    problems += _duplicates(specs, at, source)
    if problems:
        raise InputError(
            problems,
            hint="the query must return name, url, schema, labels",
            where="the targets query's rows",
        )
    return tuple(specs)


def _spec(
    table: dict[str, Any], line_of: Callable[[str], int], file: str, problems: list[Problem]
) -> TargetSpec | None:
    """One target from one table; its mistakes go to ``problems``."""
    found: list[Problem] = []
    for key in sorted(set(table) - _KEYS):
        found.append(Problem(file, line_of(key), f"unknown key {key!r} in [[target]]"))
    name, url, schema = table.get("name"), table.get("url"), table.get("schema")
    labels = table.get("labels", [])
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        found.append(
            Problem(
                file,
                line_of("name"),
                "key 'name' is required: letters, digits, '_', '.', '-' (at most 100)",
            )
        )
    if not isinstance(url, str) or not url.strip():
        found.append(Problem(file, line_of("url"), "key 'url' is required: a PostgreSQL URL"))
    if schema is not None and (not isinstance(schema, str) or not _SCHEMA.fullmatch(schema)):
        shown = repr(schema) if isinstance(schema, str) else "it"
        found.append(
            Problem(
                file,
                line_of("schema"),
                f"key 'schema': {shown} is not a schema name pgshift uses: 1 to 63 letters,"
                " digits, '_' or '-', starting with a letter or '_', and not 'pg_...'"
                " (PostgreSQL reserves those)",
            )
        )
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        found.append(Problem(file, line_of("labels"), "key 'labels' must be a list of strings"))
    problems += found
    if found:
        return None
    return TargetSpec(str(name), str(url), schema, tuple(labels))


def _duplicates(specs: Sequence[TargetSpec], lines: Sequence[int], file: str) -> list[Problem]:
    """Two targets with one name, or one identity (url + schema), are refused."""
    problems: list[Problem] = []
    names: set[str] = set()
    identities: set[tuple[str, str | None]] = set()
    for spec, line in zip(specs, lines, strict=True):
        if spec.name in names:
            problems.append(Problem(file, line, f"target name {spec.name!r} is used twice"))
        identity = (spec.url, spec.schema)
        if identity in identities:
            problems.append(
                Problem(file, line, f"target {spec.name!r} names the same database and schema"
                        " as an earlier one")
            )  # fmt: skip
        names.add(spec.name)
        identities.add(identity)
    return problems


def _same_line(number: int, _key: str) -> int:
    return number


def _decode_line(message: str) -> int:
    match = re.search(r"at line (\d+)", message)
    return int(match.group(1)) if match else 1


class _TableLines:
    """Where each ``[[target]]`` table and its keys are in the text (tomllib keeps no lines)."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.starts = [
            i + 1 for i, line in enumerate(self.lines) if re.match(r"\s*\[\[\s*target\s*\]\]", line)
        ]

    def table_line(self, index: int) -> int:
        return self.starts[index] if index < len(self.starts) else 1

    def key_line(self, index: int | None, key: str) -> int:
        """The line of ``key`` in table ``index`` (None: before the first table)."""
        if index is None:
            begin, end = 0, (self.starts[0] - 1 if self.starts else len(self.lines))
        else:
            begin = self.table_line(index)
            end = self.starts[index + 1] - 1 if index + 1 < len(self.starts) else len(self.lines)
        pattern = re.compile(rf"\s*\[?\s*\"?{re.escape(key)}\"?\s*[=\]]")
        for number in range(begin, end):
            if pattern.match(self.lines[number]):
                return number + 1
        return begin if index is not None else 1


# -- splitting a fleet -------------------------------------------------------------------------


def parse_shard(text: str) -> tuple[int, int]:
    """``I/N`` (0 <= I < N) as (I, N); ValueError naming the mistake."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if match is None:
        raise ValueError(f"{text!r} is not I/N (e.g. 0/4)")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or index >= count:
        raise ValueError(f"{text!r}: I must be at least 0 and below N, N at least 1")
    return index, count


def shard_of(name: str, count: int) -> int:
    """The shard a target name falls in: stable across runs, machines and Python versions."""
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


def in_shard(specs: Sequence[TargetSpec], index: int, count: int) -> tuple[TargetSpec, ...]:
    return tuple(s for s in specs if shard_of(s.name, count) == index)


def waves(
    specs: Sequence[TargetSpec], canary: int | None = None
) -> tuple[tuple[TargetSpec, ...], tuple[TargetSpec, ...]]:
    """(canary wave, the rest): the targets labelled canary, or ``canary`` targets when given
    (labelled ones first, then in file order). No canary at all: everything is the rest."""
    labelled = [s for s in specs if s.canary]
    if canary is None:
        chosen = labelled
    else:
        others = [s for s in specs if not s.canary]
        chosen = (labelled + others)[:canary]
    names = {s.name for s in chosen}
    return tuple(chosen), tuple(s for s in specs if s.name not in names)
