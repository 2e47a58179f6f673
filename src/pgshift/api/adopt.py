"""Adopting pgshift on a database or a project another tool built: baseline and
import_migrations, skins over ops/baseline.py and ops/importing.py.

plan_baseline and plan_import are defined in those ops modules and re-exported as they are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pgshift.db.target import Target
    from pgshift.ops.baseline import BaselinePlan, BaselineResult
    from pgshift.ops.importing import ImportPlan, ImportResult


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
