"""Fleets, the single-target path run per target: load_targets, target_settings, connect_target,
fleet_plan, fleet_up, fleet_status, fleet_run, fleet_run_name; skins over ops/fleet.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pgshift.config import Settings

if TYPE_CHECKING:
    from pgshift.db.target import Target
    from pgshift.events import FleetEmit
    from pgshift.fleet_targets import TargetSpec
    from pgshift.ops.fleet import FleetResult, FleetStatus
    from pgshift.project_files import Project


def load_targets(
    file: str | Path | None = None,
    *,
    query: str | None = None,
    control_url: str | None = None,
    shard: str | None = None,
) -> tuple[TargetSpec, ...]:
    """A fleet's targets: the ``[[target]]`` tables of ``file``, or the rows ``query`` returns
    on the control database (name, url, schema, labels); ``shard`` "I/N" keeps this worker's.

    A bad file or row raises InputError naming file:line:key (exit 2).
    """
    from pgshift.ops import fleet

    return fleet.load_targets(file, query=query, control_url=control_url, shard=shard)


def target_settings(settings: Settings, spec: TargetSpec) -> Settings:
    """The settings of one target of a fleet: its URL, its history schema, its backup folder."""
    from pgshift.ops import fleet

    return fleet.target_settings(settings, spec)


def connect_target(settings: Settings, spec: TargetSpec, *, purpose: str = "runner") -> Target:
    """The Target of one fleet target (its tenant schema as the session's search_path)."""
    from pgshift.ops import fleet

    return fleet.connect_target(settings, spec, purpose=purpose)


def fleet_plan(
    project: Project, targets: Sequence[TargetSpec], *, concurrency: int = 8
) -> FleetResult:
    """What `fleet up` would do: each target planned on its own (reads, never writes).

    A target with something to do is ``pending`` with the versions in ``versions``; one that
    cannot be planned (unreachable, drift) is ``failed`` with its exit code.
    """
    from pgshift.ops import fleet

    return fleet.fleet_plan(project, targets, concurrency)


def fleet_up(
    project: Project,
    targets: Sequence[TargetSpec],
    *,
    concurrency: int = 8,
    canary: int | None = None,
    max_failures: int | None = None,
    backup: bool = True,
    on_event: FleetEmit | None = None,
    control_url: str | None = None,
    run: str | None = None,
    worker: str | None = None,
    lease_s: float = 30.0,
) -> FleetResult:
    """Plan and apply every target through the single-target path, in waves, in a bounded pool.

    The canary wave (``canary`` targets, else those labelled canary) runs first, and the rest
    only if none of it failed; after ``max_failures`` failures no new target starts. Every
    target's history is read first, over one read-only session per database for all its
    tenants; a target with nothing pending costs only that, and only a target with work opens
    its own Target (session and lock). A target's failure is its outcome, never an
    exception: the result's ``exit_code`` is the worst target's. Events arrive through
    ``on_event`` wrapped as TargetEvent with the target's name, with TargetStarted,
    TargetFinished and FleetProgress (done / failed / remaining) beside them.

    With ``control_url`` the targets are claimed from the run table ``run`` (default: one per
    migration set) of that database, shared by every worker that names it (see
    docs/fleets.md); the result is then the whole run's.
    """
    from pgshift import events
    from pgshift.ops import fleet

    return fleet.fleet_up(
        project,
        targets,
        fleet.FleetOptions(concurrency, canary, max_failures),
        backup=backup,
        emit=on_event or events.ignore_fleet,
        control_url=control_url,
        run=run,
        worker=worker,
        lease_s=lease_s,
    )


def fleet_run_name(project: Project) -> str:
    """The default run of a control database: one per set of migrations (head + checksum), so
    the next deploy starts a new run while re-running this one resumes it."""
    from pgshift.ops import fleet

    return fleet.fleet_run_name(project)


def fleet_status(
    project: Project,
    targets: Sequence[TargetSpec],
    *,
    concurrency: int = 8,
) -> FleetStatus:
    """One row per target (head, pending, failed, drifted, last run); reads, never writes.

    An unreachable target is a row with its error (exit code 3), not an exception.
    """
    from pgshift.ops import fleet

    return fleet.fleet_status(project, targets, concurrency)


def fleet_run(control_url: str, run: str) -> FleetResult:
    """The shared run ``run`` of a control database as it stands (`fleet status --control-url`)."""
    from pgshift.ops import fleet

    return fleet.fleet_run(control_url, run)
