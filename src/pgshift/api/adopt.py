"""Adopting pgshift on a database or a project another tool built: plan_baseline/baseline and
plan_import/import_migrations; skins over ops/baseline.py and ops/importing.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pgshift.config import Settings

if TYPE_CHECKING:
    from pgshift.db.target import Target
    from pgshift.events import Emit
    from pgshift.ops.baseline import BaselinePlan, BaselineResult
    from pgshift.ops.importing import ImportPlan, ImportResult
    from pgshift.project_files import Project


def plan_baseline(
    project: Project,
    target: Target,
    version: str,
    *,
    scratch_url: str | None = None,
    on_event: Emit | None = None,
) -> BaselinePlan:
    """What `baseline V` would record, proven: the migrations up to ``version`` (plan order,
    with their dependencies) run with `up`'s Runner on a scratch database (``scratch_url``'s
    server; else the target's own server when its role may create a database; else the
    embedded one, started if needed), and its schema compared with the target's, pgshift's
    schema and other tools' bookkeeping tables left out (``plan.proven_on`` says where).

    ``plan.differences`` lists a mismatch; the target is only read. Refuses (UsageError, exit 2)
    a history with a failed or half-applied migration, or one applied beyond the baseline;
    refuses drift (exit 4); a migration that fails on the scratch database raises the runner's
    error. ``on_event`` hears what the proof is doing (`pgshift.events.Working`, `WorkDone`).
    """
    from pgshift import events
    from pgshift.ops.baseline import plan_baseline as planned

    emit = on_event or events.ignore
    return planned(project, target, version, scratch_url=scratch_url, emit=emit)


def baseline(plan: BaselinePlan, target: Target, *, force: bool = False) -> BaselineResult:
    """Record ``plan``'s migrations as applied without running them (`pgshift baseline`).

    Under the runner lock, with the checksums and rollback text `up` would record and one
    `baseline` event each, after comparing the target with the proof once more: a mismatch
    refuses (DriftError, exit 4, the differences listed) unless ``force``, which records anyway
    and says so in every event (with the differences). Then sets the project's `lint_since` to
    the baseline's version (``result.lint_since``), so `validate` treats the adopted history as
    history.
    """
    from pgshift.ops.baseline import run_baseline

    return run_baseline(plan, target, force=force)


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
    from pgshift.ops.importing import plan_import as planned

    return planned(settings, tool, source, target)


def import_migrations(plan: ImportPlan, *, target: Target | None = None) -> ImportResult:
    """Write ``plan``'s files (never replacing a file edited since an earlier import), set the
    project's `lint_since` to the last imported version, and, with ``target``, record the
    migrations the old tool had applied as applied in pgshift's history (an `import` event
    each, under the runner lock), so that `up` applies only the rest.

    A written file that does not parse refuses (InputError, exit 2) before anything is
    recorded, its ``result`` saying what was written: fix the file in place, import again.
    """
    from pgshift.ops.importing import run_import

    return run_import(plan, target)
