"""pgshift: PostgreSQL schema migrations without downtime.

This module is the library API; the command line is a thin layer over it. Heavy modules (psycopg,
pglast, rich) are imported inside the functions that need them, so `import pgshift` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pgshift import method_cache

method_cache.install()  # before any of pgshift's dataclasses is made

from pgshift.config import Settings, load_settings  # noqa: E402
from pgshift.errors import PgshiftError  # noqa: E402

if TYPE_CHECKING:
    from pgshift.api.adopt import baseline, import_migrations
    from pgshift.api.fleet import fleet_up
    from pgshift.api.inspection import (
        at_head,
        health,
        health_server,
        status,
        status_document,
        wait,
    )
    from pgshift.api.migrate import (
        apply,
        check_contract,
        contract,
        create,
        plan_contract,
        plan_up,
        up,
    )
    from pgshift.api.project import connect, database_url, load_project, read_history
    from pgshift.api.records import mark, run_history
    from pgshift.api.recover import backup, list_backups, restore, rollback, rollback_emergency
    from pgshift.api.validation import explain
    from pgshift.db.journal import LogEntry
    from pgshift.db.target import ServerFacts, Target
    from pgshift.errors import RunResult, StepResult
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
    from pgshift.ops.backup import RestoreResult
    from pgshift.ops.baseline import BaselinePlan, BaselineResult, plan_baseline
    from pgshift.ops.expand import ContractCheck, OldShapeUse
    from pgshift.ops.fleet import (
        FleetResult,
        FleetStatus,
        TargetOutcome,
        TargetStatus,
        connect_target,
        fleet_plan,
        fleet_run,
        fleet_run_name,
        fleet_status,
        load_targets,
        target_settings,
    )
    from pgshift.ops.health_rules import Check, HealthReport
    from pgshift.ops.importing import ImportPlan, ImportResult, plan_import
    from pgshift.ops.journal import HistoryReport, RunRecord
    from pgshift.ops.lint_since import LintSince
    from pgshift.ops.manifest import Manifest
    from pgshift.ops.marking import MarkResult
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
        plan_emergency,
        plan_restore,
        plan_rollback,
        preview_rollback,
    )
    from pgshift.ops.status import StatusReport
    from pgshift.ops.status_memory import StatusDocument
    from pgshift.ops.trace import TracedLock, TracedStatement, TraceReport
    from pgshift.ops.validation import ValidateReport, validate
    from pgshift.plan import MigrationState, Plan, RollbackCheck, Step
    from pgshift.project_files import Project
    from pgshift.source.importers import ImportedFile

#: The functions (and their two report types), re-exported lazily too: their bodies live in
#: pgshift.api, one private module per group of verbs, so a command imports only its own group;
#: a function the api would only pass on (same signature, nothing to load or open) is defined
#: once, in ops, and re-exported from there. tests/unit/test_facade.py keeps the tables, the
#: imports above and __all__ in agreement.
_FUNCTIONS = {
    "StatusReport": "pgshift.ops.status",
    "ValidateReport": "pgshift.ops.validation",
    "apply": "pgshift.api.migrate",
    "at_head": "pgshift.api.inspection",
    "backup": "pgshift.api.recover",
    "baseline": "pgshift.api.adopt",
    "check_contract": "pgshift.api.migrate",
    "connect": "pgshift.api.project",
    "connect_target": "pgshift.ops.fleet",
    "contract": "pgshift.api.migrate",
    "create": "pgshift.api.migrate",
    "database_url": "pgshift.api.project",
    "explain": "pgshift.api.validation",
    "fleet_plan": "pgshift.ops.fleet",
    "fleet_run": "pgshift.ops.fleet",
    "fleet_run_name": "pgshift.ops.fleet",
    "fleet_status": "pgshift.ops.fleet",
    "fleet_up": "pgshift.api.fleet",
    "health": "pgshift.api.inspection",
    "health_server": "pgshift.api.inspection",
    "import_migrations": "pgshift.api.adopt",
    "list_backups": "pgshift.api.recover",
    "load_project": "pgshift.api.project",
    "load_targets": "pgshift.ops.fleet",
    "mark": "pgshift.api.records",
    "plan_baseline": "pgshift.ops.baseline",
    "plan_emergency": "pgshift.ops.rollback",
    "plan_import": "pgshift.ops.importing",
    "plan_restore": "pgshift.ops.rollback",
    "plan_rollback": "pgshift.ops.rollback",
    "plan_contract": "pgshift.api.migrate",
    "plan_up": "pgshift.api.migrate",
    "preview_rollback": "pgshift.ops.rollback",
    "read_history": "pgshift.api.project",
    "restore": "pgshift.api.recover",
    "rollback": "pgshift.api.recover",
    "rollback_emergency": "pgshift.api.recover",
    "run_history": "pgshift.api.records",
    "status": "pgshift.api.inspection",
    "status_document": "pgshift.api.inspection",
    "target_settings": "pgshift.ops.fleet",
    "up": "pgshift.api.migrate",
    "validate": "pgshift.ops.validation",
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
    "ContractCheck": "pgshift.ops.expand",
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
    "HistoryReport": "pgshift.ops.journal",
    "ImportPlan": "pgshift.ops.importing",
    "ImportResult": "pgshift.ops.importing",
    "ImportedFile": "pgshift.source.importers",
    "LintSince": "pgshift.ops.lint_since",
    "LockRetry": "pgshift.events",
    "LogEntry": "pgshift.db.journal",
    "Manifest": "pgshift.ops.manifest",
    "MarkResult": "pgshift.ops.marking",
    "Migration": "pgshift.model",
    "MigrationState": "pgshift.plan",
    "OldShapeUse": "pgshift.ops.expand",
    "Plan": "pgshift.plan",
    "Progress": "pgshift.history",
    "Project": "pgshift.project_files",
    "RestorePlan": "pgshift.ops.rollback",
    "RestoreResult": "pgshift.ops.backup",
    "RollbackCheck": "pgshift.plan",
    "RunFinished": "pgshift.events",
    "RunRecord": "pgshift.ops.journal",
    "RunResult": "pgshift.errors",
    "RunStarted": "pgshift.events",
    "RunnerLockWaiting": "pgshift.events",
    "EarlierRunWaiting": "pgshift.events",
    "PlanOvertaken": "pgshift.events",
    "SchemaObject": "pgshift.model",
    "ServerFacts": "pgshift.db.target",
    "SimulatedStep": "pgshift.ops.rollback",
    "Simulation": "pgshift.ops.rollback",
    "StatementPreview": "pgshift.ops.rollback",
    "StatusDocument": "pgshift.ops.status_memory",
    "Step": "pgshift.plan",
    "StepApplied": "pgshift.events",
    "StepFailed": "pgshift.events",
    "StepPreview": "pgshift.ops.rollback",
    "StepResult": "pgshift.errors",
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
    "ContractCheck",
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
    "HistoryReport",
    "ImportPlan",
    "ImportResult",
    "ImportedFile",
    "LintSince",
    "LockRetry",
    "LogEntry",
    "Manifest",
    "MarkResult",
    "Migration",
    "MigrationState",
    "OldShapeUse",
    "PgshiftError",
    "Plan",
    "PlanOvertaken",
    "Progress",
    "Project",
    "RestorePlan",
    "RestoreResult",
    "RollbackCheck",
    "RunFinished",
    "RunRecord",
    "RunResult",
    "RunStarted",
    "RunnerLockWaiting",
    "SchemaObject",
    "ServerFacts",
    "Settings",
    "SimulatedStep",
    "Simulation",
    "StatementPreview",
    "StatusDocument",
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
    "check_contract",
    "connect",
    "connect_target",
    "contract",
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
    "mark",
    "plan_baseline",
    "plan_contract",
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
    "run_history",
    "status",
    "status_document",
    "target_settings",
    "up",
    "validate",
    "wait",
]

__version__ = "0.1.0"
