"""Fleets, the single-target path run per target: fleet_up, the skin over ops/fleet.py's waves.

The other fleet functions (load_targets, target_settings, connect_target, fleet_plan,
fleet_status, fleet_run, fleet_run_name) are defined in ops/fleet.py and re-exported as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pgshift.events import FleetEmit
    from pgshift.fleet_targets import TargetSpec
    from pgshift.ops.fleet import FleetResult
    from pgshift.project_files import Project


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
    plan: FleetResult | None = None,
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

    ``plan`` is fleet_plan's result for these targets, when it was just shown: if it found
    nothing to apply on any target, the histories it read are this run's too, so a fleet with
    nothing to do is read once, not twice. Otherwise (or for other targets) every history is
    read again: time may have passed since the plan, e.g. at a prompt.
    """
    from pgshift import events
    from pgshift.ops import fleet

    return fleet.up_in_waves(
        project,
        targets,
        fleet.FleetOptions(concurrency, canary, max_failures),
        backup=backup,
        emit=on_event or events.ignore_fleet,
        control_url=control_url,
        run=run,
        worker=worker,
        lease_s=lease_s,
        plan=plan,
    )
