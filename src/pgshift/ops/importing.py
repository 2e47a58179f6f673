"""`pgshift import --from TOOL SRC`: another tool's migrations written as pgshift files, and, with a
database configured, that tool's applied history carried over into pgshift's.

Planning reads everything and writes nothing: the source (pure importers; a source with no
migration at all refuses, naming what it looked for), the files it would write, and the old
tool's table (refusing a dirty or failed entry, naming it, before anything is written). Importing
again into the same folder is how a history is finished: a file `import` wrote and nobody edited
since (its `@import-checksum` says so) is updated, a file edited since is left alone and named,
so a file fixed in place stays fixed. Running writes the files, reads them back with pgshift's
own loader (so the checksums are the ones `up` computes; a file that does not parse is reported,
to be fixed in place), sets the project's `lint_since` to the last imported version, and records
the migrations the old tool applied, under the runner lock, with an `import` event each.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pgshift.db.legacy import read_tool_history
from pgshift.errors import DriftError, InputError, Problem, UsageError
from pgshift.ops.baseline import record_adopted
from pgshift.ops.lint_since import LintSince, write_lint_since
from pgshift.source.importers import (
    ImportedFile,
    ImportRefused,
    Source,
    Tool,
    ToolHistory,
    convert,
    tool_named,
    unedited,
)

if TYPE_CHECKING:
    from pgshift.config import Settings
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
    with exactly this content (an earlier import): nothing to do. ``updated`` are files an
    earlier import wrote and nobody edited since, whose content changes (the source changed):
    rewritten. ``kept`` are files edited since an earlier import (a fix made in place): left
    exactly as they are, and named. ``project_root`` is where `lint_since` is set (None: not).
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
    updated: tuple[Path, ...] = ()
    kept: tuple[Path, ...] = ()
    project_root: Path | None = None

    @property
    def last_version(self) -> str:
        """The newest imported version: `lint_since`, the end of the history."""
        return self.files[-1].version

    @property
    def pending(self) -> tuple[str, ...]:
        """Versions left for the first `pgshift up`: imported, not applied by the old tool."""
        return tuple(f.version for f in self.files if f.version not in self.carried)


@dataclass(frozen=True)
class ImportResult:
    """What `import` did: the files written (new or updated), the files left alone (edited
    since an earlier import), the versions recorded as applied, and the project's `lint_since`
    after it (``lint_since.problem`` says why it could not be written)."""

    written: tuple[Path, ...]
    recorded: tuple[str, ...] = ()
    run_id: str | None = None
    kept: tuple[Path, ...] = ()
    lint_since: LintSince | None = None


def _outputs(plan_files: Sequence[ImportedFile], directory: Path) -> list[tuple[Path, str]]:
    out: list[tuple[Path, str]] = []
    for f in plan_files:
        out.append((directory / f.migration_name, f.migration_text))
        if f.rollback_name is not None and f.rollback_text is not None:
            out.append((directory / f.rollback_name, f.rollback_text))
    return out


@dataclass(frozen=True)
class _Directory:
    """The files of an import against the folder: what to write, and what to leave alone."""

    same: tuple[Path, ...]
    updated: tuple[Path, ...]
    kept: tuple[Path, ...]


def _state(path: Path, text: str) -> str:
    """ "new", "same", "update" (ours, unedited, content changes) or "kept" (edited since)."""
    try:
        current = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return "new"
    except (OSError, UnicodeDecodeError):
        return "kept"
    if current == text:
        return "same"
    return "update" if unedited(current, text) else "kept"


def _check_directory(files: Sequence[ImportedFile], directory: Path) -> _Directory:
    """Classify every file the import would write; refuse a version another file uses.

    A file of the folder that is neither a file of this import nor its rollback, and uses one of
    its versions, is someone else's migration: refused (exit 2), as the version is taken.
    """
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"{directory} is not a folder")
    ours = {f.version: f for f in files}
    wanted = dict(_outputs(files, directory))
    names = {directory / n for f in files for n in (f.migration_name, _rollback_name(f))}
    clashes: list[str] = []
    for path in sorted(directory.glob("*.sql")) if directory.is_dir() else ():
        if path not in names and path.name[:14] in ours:
            clashes.append(f"{path} already uses version {path.name[:14]}")
    if clashes:
        raise UsageError(
            "import refuses to overwrite files:\n" + "\n".join(f"  {c}" for c in clashes),
            hint="import into an empty folder (--dir), or move those files away",
        )
    states = {path: _state(path, text) for path, text in wanted.items()}
    return _Directory(
        tuple(p for p, s in states.items() if s == "same"),
        tuple(p for p, s in states.items() if s == "update"),
        tuple(p for p, s in states.items() if s == "kept"),
    )


def _rollback_name(f: ImportedFile) -> str:
    """The rollback file's name of ``f``, also when this import writes none (a fix may add it)."""
    return f.rollback_name or f"{f.version}_{f.description}_rollback.sql"


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


def _found_some(tool: Tool, source_dir: Path, source: Source) -> None:
    """Refuse (exit 2) a source with no migration: a wrong folder or another tool's layout."""
    if source.migrations:
        return
    seen = f"; left out: {len(source.skipped)} file(s)" if source.skipped else ""
    lines = "".join(f"\n  {s}" for s in source.skipped[:5])
    raise ImportRefused(
        f"{tool.name}: nothing to import from {source_dir}: looked for {tool.looks_for}{seen}"
        + lines,
        hint="give the folder that holds the migrations, and the tool that wrote them"
        " (--from diesel, golang-migrate, dbmate, flyway or popx); nothing was written",
    )


def plan_import(
    settings: Settings, tool: str, source: Path | str, *, target: Target | None = None
) -> ImportPlan:
    """What `import --from TOOL SRC` would write into the migrations folder, and record.

    ``tool`` is diesel, golang-migrate, dbmate, flyway or popx. A source with no migration
    refuses (ImportRefused, exit 2, naming what it looked for); so does a version of the folder
    that another file uses. Files of an earlier import into the folder are updated when nobody
    edited them since (``plan.updated``) and left alone when someone did (``plan.kept``). With
    ``target``, reads that tool's history table there: a dirty or failed entry refuses
    (ImportRefused, exit 2), an entry without a source file refuses as drift (exit 4); nothing
    is written either way.
    """
    return plan_import_into(
        tool_named(tool),
        Path(source),
        settings.project.migrations_dir,
        target,
        project_root=settings.project.root,
    )


def plan_import_into(
    tool: Tool,
    source_dir: Path,
    directory: Path,
    target: Target | None = None,
    *,
    project_root: Path | None = None,
) -> ImportPlan:
    """Read the source, work out the files, and (with ``target``) read the old tool's table.

    ``project_root`` is the project whose `lint_since` the import sets (None: left as it is).
    """
    source = tool.read(source_dir)
    _found_some(tool, source_dir, source)
    scheme, files = convert(tool, source)
    folder = _check_directory(files, directory)
    table: str | None = None
    carried: tuple[str, ...] = ()
    if target is not None:
        rows = read_tool_history(target.session, tool.name, tool.table)
        if rows is not None:
            table = tool.table
            carried = _carried(tool, tool.interpret(rows, source.migrations), files)
    return ImportPlan(
        tool.name,
        source_dir,
        directory,
        scheme,
        files,
        source.skipped,
        table,
        carried,
        folder.same,
        folder.updated,
        folder.kept,
        project_root,
    )


def _write(plan: ImportPlan) -> tuple[Path, ...]:
    """Write every new file ("x": fail if it appeared meanwhile) and rewrite each file that is
    still, at this moment, an unedited file of an earlier import; never touch any other."""
    plan.directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for path, text in _outputs(plan.files, plan.directory):
        state = _state(path, text)
        if state == "new":
            try:
                with path.open("x", encoding="utf-8", newline="") as handle:
                    handle.write(text)
            except FileExistsError:
                raise UsageError(
                    f"{path} appeared meanwhile; import refuses to overwrite it"
                ) from None
        elif state == "update":
            _replace(path, text)
        else:
            continue
        written.append(path)
    return tuple(written)


def _replace(path: Path, text: str) -> None:
    """Rewrite ``path`` whole or not at all: a new file beside it, renamed over it."""
    temporary = path.with_name(f".{path.name}.import")
    with temporary.open("w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    os.replace(temporary, path)


def _imported(plan: ImportPlan) -> tuple[dict[str, Migration], list[Problem]]:
    """The migrations read back from disk by pgshift's loader, and the problems of this
    import's files (a source file that does not parse is written as it is)."""
    from pgshift.source.loader import read_migrations

    loaded = read_migrations(plan.directory)
    ours = {
        str(plan.directory / n) for f in plan.files for n in (f.migration_name, _rollback_name(f))
    }
    problems = [p for p in loaded.problems if p.file in ours]
    return {m.version: m for m in loaded.migrations}, problems


class ImportUnusable(InputError):
    """Files of the import do not parse: nothing is recorded, and ``imported`` says what was
    written (the files are in place, to be fixed there)."""

    def __init__(
        self, problems: Sequence[Problem], imported: ImportResult, *, hint: str | None = None
    ) -> None:
        super().__init__(tuple(problems), hint=hint)
        self.imported = imported


def _unusable(
    plan: ImportPlan, problems: list[Problem], imported: ImportResult, *, recording: bool
) -> ImportUnusable:
    """The report of files that do not parse: fix them where they are, in the pgshift folder."""
    again = (
        "then run this import again: it leaves the files you fixed as they are (edited since"
        " the import) and records the old tool's history; nothing was recorded yet"
        if recording
        else "`pgshift validate` checks them"
    )
    return ImportUnusable(
        problems,
        imported,
        hint=f"the files are written into {plan.directory}: fix those files there, in place;"
        f" {again}",
    )


def run_import(plan: ImportPlan, target: Target | None = None) -> ImportResult:
    """Write the files, set `lint_since`; with ``target`` and carried versions, record them.

    A file of the import that does not parse refuses (ImportUnusable, an InputError: exit 2)
    after the files are written and before anything is recorded, its ``imported`` saying what
    was written.
    """
    written = _write(plan)
    since = None
    if plan.project_root is not None:
        since = write_lint_since(plan.project_root, plan.last_version)
    result = ImportResult(written, (), None, plan.kept, since)
    migrations, problems = _imported(plan)
    recording = target is not None and bool(plan.carried)
    if problems:
        raise _unusable(plan, problems, result, recording=recording)
    if target is None or not plan.carried:
        return result
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
    return replace(result, recorded=recorded, run_id=run_id if recorded else None)
