"""`pgshift import --from TOOL SRC`: another tool's migrations written as pgshift files, and, with a
database configured, that tool's applied history carried over into pgshift's.

Planning reads everything and writes nothing: the source (pure importers), the files it would
write (refusing any that exists with other content), and the old tool's table (refusing a dirty
or failed entry, naming it, before anything is written). Running writes the files, reads them
back with pgshift's own loader (so the checksums are the ones `up` computes) and records the
migrations the old tool applied, under the runner lock, with an `import` event each.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pgshift.db.legacy import read_tool_history
from pgshift.errors import DriftError, InputError, UsageError
from pgshift.ops.baseline import record_adopted
from pgshift.source.importers import ImportedFile, ImportRefused, Tool, ToolHistory, convert

if TYPE_CHECKING:
    from pgshift.db.target import Target
    from pgshift.history import History
    from pgshift.model import Migration

EVENT_IMPORT = "import"


@dataclass(frozen=True)
class ImportPlan:
    """What `import` would write and record.

    ``scheme`` says how the tool's ids became versions (importers.map_versions). ``carried``
    are the versions the old tool's table marks applied, to be recorded in pgshift's history
    (empty without a database, or when the table is absent: ``history_table`` None).
    ``skipped`` names source files left out, and why. ``existing`` are files already written
    with exactly this content (an earlier import stopped before recording): kept as they are.
    """

    tool: str
    source: Path
    directory: Path
    scheme: str
    files: tuple[ImportedFile, ...]
    skipped: tuple[str, ...] = ()
    history_table: str | None = None
    carried: tuple[str, ...] = ()
    existing: tuple[Path, ...] = ()

    @property
    def pending(self) -> tuple[str, ...]:
        """Versions left for the first `pgshift up`: imported, not applied by the old tool."""
        return tuple(f.version for f in self.files if f.version not in self.carried)


@dataclass(frozen=True)
class ImportResult:
    """What `import` did: the files written, and the versions recorded as applied."""

    written: tuple[Path, ...]
    recorded: tuple[str, ...] = ()
    run_id: str | None = None


def _outputs(plan_files: Sequence[ImportedFile], directory: Path) -> list[tuple[Path, str]]:
    out: list[tuple[Path, str]] = []
    for f in plan_files:
        out.append((directory / f.migration_name, f.migration_text))
        if f.rollback_name is not None and f.rollback_text is not None:
            out.append((directory / f.rollback_name, f.rollback_text))
    return out


def _check_directory(files: Sequence[ImportedFile], directory: Path) -> tuple[Path, ...]:
    """Refuse to overwrite or to reuse a version; the files already there, identical, are kept."""
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"{directory} is not a folder")
    versions = {f.version: f for f in files}
    wanted = dict(_outputs(files, directory))
    clashes: list[str] = []
    same: list[Path] = []
    for path in sorted(directory.glob("*.sql")) if directory.is_dir() else ():
        if path in wanted:
            if path.read_bytes() == wanted[path].encode("utf-8"):
                same.append(path)
            else:
                clashes.append(f"{path} exists (with other content)")
        elif path.name[:14] in versions:
            clashes.append(f"{path} already uses version {path.name[:14]}")
    if clashes:
        raise UsageError(
            "import refuses to overwrite files:\n" + "\n".join(f"  {c}" for c in clashes),
            hint="import into an empty folder (--dir), or move those files away",
        )
    return tuple(same)


def _carried(tool: Tool, history: ToolHistory, files: Sequence[ImportedFile]) -> tuple[str, ...]:
    if history.refused:
        raise ImportRefused(
            f"{tool.name}'s {history.table} has entries that cannot be carried over:\n"
            + "\n".join(f"  {r}" for r in history.refused),
            hint=f"repair it with {tool.name} first (e.g. finish or undo that migration and"
            " mark it clean), then import again; nothing was written",
        )
    if history.unknown:
        raise DriftError(
            f"{tool.name}'s {history.table} marks applied what the source has no file for:"
            f" {', '.join(history.unknown)}",
            hint="import from the folder the database was migrated from; nothing was written",
        )
    version_of = {f.source.id: f.version for f in files}
    return tuple(sorted(version_of[i] for i in history.applied))


def plan_import(
    tool: Tool, source_dir: Path, directory: Path, target: Target | None = None
) -> ImportPlan:
    """Read the source, work out the files, and (with ``target``) read the old tool's table."""
    source = tool.read(source_dir)
    scheme, files = convert(tool, source)
    existing = _check_directory(files, directory)
    table: str | None = None
    carried: tuple[str, ...] = ()
    if target is not None:
        rows = read_tool_history(target.session, tool.name, tool.table)
        if rows is not None:
            table = tool.table
            carried = _carried(tool, tool.interpret(rows, source.migrations), files)
    return ImportPlan(
        tool.name, source_dir, directory, scheme, files, source.skipped, table, carried, existing
    )


def _write(plan: ImportPlan) -> tuple[Path, ...]:
    """Write every file that is not there yet; never replace one ("x": fail if it exists)."""
    plan.directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for path, text in _outputs(plan.files, plan.directory):
        if path in plan.existing:
            continue
        try:
            with path.open("x", encoding="utf-8", newline="") as handle:
                handle.write(text)
        except FileExistsError:
            raise UsageError(f"{path} appeared meanwhile; import refuses to overwrite it") from None
        written.append(path)
    return tuple(written)


def _imported(plan: ImportPlan) -> dict[str, Migration]:
    """The carried migrations read back from disk by pgshift's loader; their problems refuse."""
    from pgshift.source.loader import read_migrations

    loaded = read_migrations(plan.directory)
    ours = {
        str(plan.directory / n)
        for f in plan.files
        for n in (f.migration_name, f.rollback_name)
        if n
    }
    problems = [p for p in loaded.problems if p.file in ours]
    if problems:
        raise InputError(
            problems,
            hint="the files are written; fix them (or the source and import again into an empty"
            " folder), then record the history with another `pgshift import`",
        )
    return {m.version: m for m in loaded.migrations}


def run_import(plan: ImportPlan, target: Target | None = None) -> ImportResult:
    """Write the files; with ``target`` and carried versions, record them as applied."""
    written = _write(plan)
    if target is None or not plan.carried:
        return ImportResult(written)
    migrations = _imported(plan)
    by_version = {f.version: f for f in plan.files}

    def check(history: History) -> list[tuple[Migration, Mapping[str, Any]]]:
        applied = history.applied_versions()
        chosen: list[tuple[Migration, Mapping[str, Any]]] = []
        for version in plan.carried:
            if version in applied:
                continue  # recorded by an earlier import (or applied by pgshift itself)
            source = by_version[version].source
            detail = {"tool": plan.tool, "id": source.id, "table": plan.history_table}
            chosen.append((migrations[version], detail))
        return chosen

    run_id, recorded = record_adopted(target, EVENT_IMPORT, check)
    return ImportResult(written, recorded, run_id if recorded else None)
