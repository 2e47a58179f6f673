"""pgshift: PostgreSQL schema migrations without downtime.

This module is the library API; the command line is a thin layer over it. Heavy modules (psycopg,
pglast, rich) are imported inside the functions that need them, so `import pgshift` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pgshift.config import Settings, load_settings
from pgshift.errors import PgshiftError

if TYPE_CHECKING:
    from pgshift.api.adopt import baseline, import_migrations, plan_baseline, plan_import
    from pgshift.api.fleet import (
        connect_target,
        fleet_plan,
        fleet_run,
        fleet_run_name,
        fleet_status,
        fleet_up,
        load_targets,
        target_settings,
    )
    from pgshift.api.inspection import at_head, health, health_server, status, wait
    from pgshift.api.migrate import apply, create, plan_up, up
    from pgshift.api.project import connect, database_url, load_project, read_history
    from pgshift.api.recover import (
        backup,
        list_backups,
        plan_emergency,
        plan_restore,
        plan_rollback,
        preview_rollback,
        restore,
        rollback,
        rollback_emergency,
    )
    from pgshift.api.validation import ValidateReport, explain, validate
    from pgshift.db.target import ServerFacts, Target
    from pgshift.events import (
        BackupProgress,
        BackupTaken,
        EarlierRunWaiting,
        Event,
        FleetEvent,
        FleetProgress,
        LockRetry,
        PlanOvertaken,
        RunFinished,
        RunnerLockWaiting,
        RunStarted,
        StepApplied,
        StepFailed,
        StepSkipped,
        StepStarted,
        TargetEvent,
        TargetFinished,
        TargetStarted,
        WaveStarted,
        WorkDone,
        Working,
    )
    from pgshift.fleet_targets import TargetSpec
    from pgshift.history import AppliedMigration, History, Progress
    from pgshift.lint.finding import Finding, Fix
    from pgshift.model import Migration, SchemaObject
    from pgshift.ops.apply import RunResult, StepResult
    from pgshift.ops.backup import RestoreResult
    from pgshift.ops.baseline import BaselinePlan, BaselineResult
    from pgshift.ops.fleet import FleetResult, FleetStatus, TargetOutcome, TargetStatus
    from pgshift.ops.health_rules import Check, HealthReport
    from pgshift.ops.importing import ImportPlan, ImportResult
    from pgshift.ops.lint_since import LintSince
    from pgshift.ops.manifest import Manifest
    from pgshift.ops.readiness import HeadReport
    from pgshift.ops.rollback import (
        DryRunReport,
        EmergencyPlan,
        EmergencyResult,
        RestorePlan,
        SimulatedStep,
        Simulation,
        StatementPreview,
        StepPreview,
    )
    from pgshift.ops.status import StatusReport
    from pgshift.ops.trace import TracedLock, TracedStatement, TraceReport
    from pgshift.plan import MigrationState, Plan, RollbackCheck, Step
    from pgshift.project_files import Project
    from pgshift.source.importers import ImportedFile

#: The functions (and their two report types), re-exported lazily too: their bodies live in
#: pgshift.api, one private module per group of verbs, so a command imports only its own group.
_FUNCTIONS = {
    "StatusReport": "pgshift.ops.status",
    "ValidateReport": "pgshift.api.validation",
    "apply": "pgshift.api.migrate",
    "at_head": "pgshift.api.inspection",
    "backup": "pgshift.api.recover",
    "baseline": "pgshift.api.adopt",
    "connect": "pgshift.api.project",
    "connect_target": "pgshift.api.fleet",
    "create": "pgshift.api.migrate",
    "database_url": "pgshift.api.project",
    "explain": "pgshift.api.validation",
    "fleet_plan": "pgshift.api.fleet",
    "fleet_run": "pgshift.api.fleet",
    "fleet_run_name": "pgshift.api.fleet",
    "fleet_status": "pgshift.api.fleet",
    "fleet_up": "pgshift.api.fleet",
    "health": "pgshift.api.inspection",
    "health_server": "pgshift.api.inspection",
    "import_migrations": "pgshift.api.adopt",
    "list_backups": "pgshift.api.recover",
    "load_project": "pgshift.api.project",
    "load_targets": "pgshift.api.fleet",
    "plan_baseline": "pgshift.api.adopt",
    "plan_emergency": "pgshift.api.recover",
    "plan_import": "pgshift.api.adopt",
    "plan_restore": "pgshift.api.recover",
    "plan_rollback": "pgshift.api.recover",
    "plan_up": "pgshift.api.migrate",
    "preview_rollback": "pgshift.api.recover",
    "read_history": "pgshift.api.project",
    "restore": "pgshift.api.recover",
    "rollback": "pgshift.api.recover",
    "rollback_emergency": "pgshift.api.recover",
    "status": "pgshift.api.inspection",
    "target_settings": "pgshift.api.fleet",
    "up": "pgshift.api.migrate",
    "validate": "pgshift.api.validation",
    "wait": "pgshift.api.inspection",
}

#: The result and event types, re-exported lazily: `pgshift.RunResult` works without making
#: `import pgshift` pay for the modules behind them (see __getattr__ below).
_TYPES = {
    "AppliedMigration": "pgshift.history",
    "BackupProgress": "pgshift.events",
    "BackupTaken": "pgshift.events",
    "BaselinePlan": "pgshift.ops.baseline",
    "BaselineResult": "pgshift.ops.baseline",
    "Check": "pgshift.ops.health_rules",
    "DryRunReport": "pgshift.ops.rollback",
    "EmergencyPlan": "pgshift.ops.rollback",
    "EmergencyResult": "pgshift.ops.rollback",
    "Event": "pgshift.events",
    "Finding": "pgshift.lint.finding",
    "FleetEvent": "pgshift.events",
    "FleetProgress": "pgshift.events",
    "FleetResult": "pgshift.ops.fleet",
    "FleetStatus": "pgshift.ops.fleet",
    "HeadReport": "pgshift.ops.readiness",
    "Fix": "pgshift.lint.finding",
    "HealthReport": "pgshift.ops.health_rules",
    "History": "pgshift.history",
    "ImportPlan": "pgshift.ops.importing",
    "ImportResult": "pgshift.ops.importing",
    "ImportedFile": "pgshift.source.importers",
    "LintSince": "pgshift.ops.lint_since",
    "LockRetry": "pgshift.events",
    "Manifest": "pgshift.ops.backup",
    "Migration": "pgshift.model",
    "MigrationState": "pgshift.plan",
    "Plan": "pgshift.plan",
    "Progress": "pgshift.history",
    "Project": "pgshift.project_files",
    "RestorePlan": "pgshift.ops.rollback",
    "RestoreResult": "pgshift.ops.backup",
    "RollbackCheck": "pgshift.plan",
    "RunFinished": "pgshift.events",
    "RunResult": "pgshift.ops.apply",
    "RunStarted": "pgshift.events",
    "RunnerLockWaiting": "pgshift.events",
    "EarlierRunWaiting": "pgshift.events",
    "PlanOvertaken": "pgshift.events",
    "SchemaObject": "pgshift.model",
    "ServerFacts": "pgshift.db.target",
    "SimulatedStep": "pgshift.ops.rollback",
    "Simulation": "pgshift.ops.rollback",
    "StatementPreview": "pgshift.ops.rollback",
    "Step": "pgshift.plan",
    "StepApplied": "pgshift.events",
    "StepFailed": "pgshift.events",
    "StepPreview": "pgshift.ops.rollback",
    "StepResult": "pgshift.ops.apply",
    "StepSkipped": "pgshift.events",
    "StepStarted": "pgshift.events",
    "Target": "pgshift.db.target",
    "TargetEvent": "pgshift.events",
    "TargetFinished": "pgshift.events",
    "TargetOutcome": "pgshift.ops.fleet",
    "TargetSpec": "pgshift.fleet_targets",
    "TargetStarted": "pgshift.events",
    "TargetStatus": "pgshift.ops.fleet",
    "WorkDone": "pgshift.events",
    "Working": "pgshift.events",
    "WaveStarted": "pgshift.events",
    "TraceReport": "pgshift.ops.trace",
    "TracedLock": "pgshift.ops.trace",
    "TracedStatement": "pgshift.ops.trace",
}


def __dir__() -> list[str]:
    """Every public name, whether or not it was used yet (completion in a shell, help())."""
    return sorted(set(globals()) | set(__all__))


def __getattr__(name: str) -> object:
    """Import a re-exported function or type on first use."""
    module = _FUNCTIONS.get(name) or _TYPES.get(name)
    if module is None:
        raise AttributeError(f"module 'pgshift' has no attribute {name!r}")
    import importlib

    value: object = getattr(importlib.import_module(module), name)
    if name in _FUNCTIONS:
        globals()[name] = value  # later look-ups find it directly, as when it was defined here
    return value


__all__ = [
    "AppliedMigration",
    "BackupProgress",
    "BackupTaken",
    "BaselinePlan",
    "BaselineResult",
    "Check",
    "DryRunReport",
    "EarlierRunWaiting",
    "EmergencyPlan",
    "EmergencyResult",
    "Event",
    "Finding",
    "Fix",
    "FleetEvent",
    "FleetProgress",
    "FleetResult",
    "FleetStatus",
    "HeadReport",
    "HealthReport",
    "History",
    "ImportPlan",
    "ImportResult",
    "ImportedFile",
    "LintSince",
    "LockRetry",
    "Manifest",
    "Migration",
    "MigrationState",
    "PgshiftError",
    "Plan",
    "PlanOvertaken",
    "Progress",
    "Project",
    "RestorePlan",
    "RestoreResult",
    "RollbackCheck",
    "RunFinished",
    "RunResult",
    "RunStarted",
    "RunnerLockWaiting",
    "SchemaObject",
    "ServerFacts",
    "Settings",
    "SimulatedStep",
    "Simulation",
    "StatementPreview",
    "StatusReport",
    "Step",
    "StepApplied",
    "StepFailed",
    "StepPreview",
    "StepResult",
    "StepSkipped",
    "StepStarted",
    "Target",
    "TargetEvent",
    "TargetFinished",
    "TargetOutcome",
    "TargetSpec",
    "TargetStarted",
    "TargetStatus",
    "TraceReport",
    "TracedLock",
    "TracedStatement",
    "ValidateReport",
    "WaveStarted",
    "WorkDone",
    "Working",
    "apply",
    "at_head",
    "backup",
    "baseline",
    "connect",
    "connect_target",
    "create",
    "database_url",
    "explain",
    "fleet_plan",
    "fleet_run",
    "fleet_run_name",
    "fleet_status",
    "fleet_up",
    "health",
    "health_server",
    "import_migrations",
    "list_backups",
    "load_project",
    "load_settings",
    "load_targets",
    "plan_baseline",
    "plan_emergency",
    "plan_import",
    "plan_restore",
    "plan_rollback",
    "plan_up",
    "preview_rollback",
    "read_history",
    "restore",
    "rollback",
    "rollback_emergency",
    "status",
    "target_settings",
    "up",
    "validate",
    "wait",
]

__version__ = "0.1.0"
