"""`pgshift baseline V`: adopt a database another tool or a person built, once its schema is proven.

The proof is `up`'s own: the migrations up to V (in plan order, with their dependencies) run with
the real Runner on a scratch database, and its schema fingerprint is compared with the target's,
pgshift's own schema and other tools' bookkeeping tables left out. Only when they match (or when
forced, which is logged) are those migrations recorded as applied, under the runner lock, with
the checksums and rollback text `up` would have recorded and a `baseline` event each.

It also owns the step `import` shares: recording migrations as applied without running them.
"""

from __future__ import annotations

import getpass
import socket
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pgshift.db.fingerprint import Fingerprint, differences, fingerprint
from pgshift.db.scratch import create_database, drop_database
from pgshift.db.target import Target
from pgshift.errors import DriftError, UsageError
from pgshift.history import AppliedMigration, History
from pgshift.ops.apply import Runner, RunOptions
from pgshift.plan import migration_states, plan_up

if TYPE_CHECKING:
    from pgshift.model import Migration
    from pgshift.ops.lint_since import LintSince

#: Other migration tools' bookkeeping tables: never part of the schema being proven.
BOOKKEEPING_TABLES = (
    "schema_migrations",
    "__diesel_schema_migrations",
    "flyway_schema_history",
    "goose_db_version",
)

EVENT_BASELINE = "baseline"


@dataclass(frozen=True)
class BaselinePlan:
    """What `baseline V` would record, and how the target's schema compares with the proof.

    ``migrations`` are recorded as applied (plan order); ``already`` were applied before, with
    the same checksum, and stay as they are. ``differences`` list how the target differs from
    the scratch database the migrations built ("missing: table public.orders": the target
    lacks it; "left behind: ...": only the target has it); empty means the schemas match.
    """

    version: str
    migrations: tuple[Migration, ...]
    already: tuple[str, ...]
    differences: tuple[str, ...]
    expected: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    project: tuple[Migration, ...] = field(default=(), repr=False, compare=False)

    @property
    def matches(self) -> bool:
        return not self.differences

    @property
    def versions(self) -> tuple[str, ...]:
        return tuple(m.version for m in self.migrations)


@dataclass(frozen=True)
class BaselineResult:
    """What `baseline` recorded: the versions, under which run id, and whether it was forced;
    and the project's `lint_since` after it (set by the api, which knows the project)."""

    run_id: str
    versions: tuple[str, ...]
    forced: bool = False
    differences: tuple[str, ...] = ()
    lint_since: LintSince | None = None


def _is_bookkeeping(key: str, definition: str) -> bool:
    """Whether a fingerprint entry belongs to another tool's history table."""
    kind, _, rest = key.partition(" ")
    parts = rest.split(" ", 1)[0].split(".")
    if len(parts) < 2:
        return False
    relation = parts[1]
    if kind == "index":
        return any(f".{t} USING " in definition for t in BOOKKEEPING_TABLES)
    if kind == "sequence":
        return any(relation.startswith(f"{t}_") for t in BOOKKEEPING_TABLES)
    return relation in BOOKKEEPING_TABLES


def schema_of(conn: Any, schema: str) -> Fingerprint:
    """The fingerprint a baseline compares: pgshift's schema and tools' tables left out.

    A schema's owner is left out too: the scratch server's user is not the target's.
    """
    printed = fingerprint(conn, (schema,))
    return {
        key: ("" if key.startswith("schema ") else value)
        for key, value in printed.items()
        if not _is_bookkeeping(key, value)
    }


def select(migrations: Sequence[Migration], history: History, version: str) -> BaselinePlan:
    """The migrations up to ``version`` to record, checked against the target's history.

    Refuses (UsageError, exit 2) a history with a failed or half-applied migration, or with a
    migration applied that is not one of them; refuses (DriftError, exit 4) one of them applied
    with another checksum. Pure: no proof yet (``differences`` empty).
    """
    if version not in {m.version for m in migrations}:
        raise UsageError(
            f"baseline {version}: no migration file has this version",
            hint="`pgshift status` lists the versions of the files",
        )
    wanted = plan_up(migrations, History(), version).steps
    chosen = {s.migration.version for s in wanted}
    trouble = sorted(history.failed | {p.version for p in history.in_progress})
    if trouble:
        raise UsageError(
            f"migration(s) {', '.join(trouble)} failed or stopped half-way in this database;"
            " a baseline records a known good state, and this is not one",
            hint="finish them first (`pgshift status` shows them)",
        )
    beyond = sorted(a.version for a in history.applied if a.version not in chosen)
    if beyond:
        raise UsageError(
            f"already applied and not part of the baseline up to {version}: {', '.join(beyond)};"
            " a baseline adopts a database, it does not rewrite pgshift's history",
            hint="baseline up to the newest applied version or later, or use `pgshift up`",
        )
    states = {s.version: s for s in migration_states(migrations, history)}
    drifted = [v for v in sorted(chosen) if states[v].state == "drifted"]
    if drifted:
        raise DriftError(
            f"already applied with another checksum (the file changed): {', '.join(drifted)}",
            hint="restore the files as they were applied",
        )
    applied = history.applied_versions()
    todo = tuple(s.migration for s in wanted if s.migration.version not in applied)
    already = tuple(v for v in sorted(chosen) if v in applied)
    return BaselinePlan(version, todo, already, (), project=tuple(migrations))


def prove(
    migrations: Sequence[Migration], version: str, server_url: str, options: RunOptions
) -> Fingerprint:
    """The schema the migrations up to ``version`` build, run by `up`'s Runner on a scratch
    database of ``server_url`` (dropped after); a failing migration raises the runner's error.
    """
    name, url = create_database(server_url, "pgshift_baseline")
    try:
        with Target(
            url,
            schema=options.schema,
            purpose="baseline proof",
            runner_lock_wait_ms=options.runner_lock_wait_ms,
            allow_pooler=options.allow_pooler,
        ) as scratch:
            Runner(scratch, options).run(plan_up(migrations, scratch.read_history(), version))
            return schema_of(scratch.session, options.schema)
    finally:
        drop_database(server_url, name)


def plan_baseline(
    migrations: Sequence[Migration],
    target: Target,
    version: str,
    server_url: str | Callable[[], str],
) -> BaselinePlan:
    """Select the migrations, prove them on a scratch database, compare with the target.

    ``server_url`` may be a function that starts the scratch server: it is called only once
    the selection stands, so a mistyped version never starts one.
    """
    chosen = select(migrations, target.read_history(), version)
    options = RunOptions.from_settings(target.settings)
    server = server_url if isinstance(server_url, str) else server_url()
    expected = prove(migrations, version, server, options)
    found = tuple(differences(expected, schema_of(target.session, target.schema)))
    return BaselinePlan(
        chosen.version, chosen.migrations, chosen.already, found, expected, tuple(migrations)
    )


def adopted_row(m: Migration, run_id: str) -> AppliedMigration:
    """The applied row `up` would have written for ``m`` (checksums, rollback text, metadata)."""
    return AppliedMigration(
        version=m.version,
        description=m.description,
        checksum=m.checksum,
        rollback_checksum=m.rollback.checksum if m.rollback else None,
        rollback_sql=m.rollback.text if m.rollback else None,
        applied_at=None,  # type: ignore[arg-type]  # the database's now()
        duration_ms=0,
        applied_by=getpass.getuser(),
        host=socket.gethostname(),
        run_id=run_id,
        metadata=m.header.metadata(),
    )


def record_adopted(
    target: Target,
    event: str,
    check: Callable[[History], Sequence[tuple[Migration, Mapping[str, Any]]]],
) -> tuple[str, tuple[str, ...]]:
    """Under the runner lock: ``check`` the fresh history (it raises to refuse) and record
    the migrations it returns as applied, each with its ``event`` detail. (run id, versions).
    """
    run_id = str(uuid.uuid4())
    lock = target.runner_lock(event)
    lock.acquire()
    try:
        target.prepare()
        chosen = check(target.read_history())
        rows = [adopted_row(m, run_id) for m, _ in chosen]
        details = [dict(d) for _, d in chosen]
        if rows:
            target.store.record_adopted(target.session, rows, event, details)
        return run_id, tuple(r.version for r in rows)
    finally:
        lock.release()


def run_baseline(plan: BaselinePlan, target: Target, *, force: bool = False) -> BaselineResult:
    """Record ``plan`` under the lock, after comparing the target with the proof once more.

    A mismatch refuses (DriftError, exit 4, the differences listed) unless ``force``: then
    every `baseline` event says it was forced and lists the differences.
    """
    found: list[str] = []

    def check(history: History) -> list[tuple[Migration, Mapping[str, Any]]]:
        fresh = select(plan.project, history, plan.version)
        found[:] = differences(plan.expected, schema_of(target.session, target.schema))
        if found and not force:
            raise mismatch(plan.version, found)
        detail: dict[str, Any] = {"baseline": plan.version, "forced": bool(found)}
        if found:
            detail["differences"] = found
        return [(m, detail) for m in fresh.migrations]

    run_id, versions = record_adopted(target, EVENT_BASELINE, check)
    return BaselineResult(run_id, versions, forced=bool(found), differences=tuple(found))


def mismatch(version: str, found: Sequence[str]) -> DriftError:
    shown = "\n".join(f"  {line}" for line in found)
    return DriftError(
        f"the database's schema is not what the migrations up to {version} build"
        f" ({len(found)} difference(s); 'missing' = the database lacks it, 'left behind' = only"
        f" the database has it):\n{shown}",
        hint="baseline at the version the database really is at, or pass --force to record"
        " them anyway (logged)",
    )
