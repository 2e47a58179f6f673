"""`pgshift baseline V`: adopt a database another tool or a person built, once its schema is proven.

The proof is `up`'s own: the migrations up to V (in plan order, with their dependencies) run with
the real Runner on a scratch database, and its schema fingerprint is compared with the target's,
pgshift's own schema and other tools' bookkeeping tables left out. Only when they match (or when
forced, which is logged) are those migrations recorded as applied, under the runner lock, with
the checksums and rollback text `up` would have recorded and a `baseline` event each.

The scratch database is on the target's own server when its role may create one (db/scratch.py),
so the proof runs on the target's major; elsewhere both sides are compared in the terms every
major shares (fingerprint.portable). Other tools' tables a migration refers to are copied from
the target onto the scratch database first (db/tooltables.py).

It also owns the step `import` shares: recording migrations as applied without running them.
"""

from __future__ import annotations

import getpass
import socket
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pgshift.db.fingerprint import Fingerprint, differences, fingerprint, portable
from pgshift.db.scratch import ScratchDatabase, ScratchServer
from pgshift.db.target import Target
from pgshift.db.tooltables import (
    BOOKKEEPING_TABLES,
    ToolTable,
    create_tool_tables,
    read_tool_tables,
)
from pgshift.errors import DriftError, MigrationFailed, UsageError
from pgshift.history import AppliedMigration, History
from pgshift.ops.apply import Runner, RunOptions
from pgshift.ops.lint_since import write_lint_since
from pgshift.plan import migration_states, plan_pending

if TYPE_CHECKING:
    from pgshift.model import Migration
    from pgshift.ops.lint_since import LintSince
    from pgshift.project_files import Project

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
    #: Where the proof ran ("scratch database ... on the target's server (PostgreSQL 15.4)").
    proven_on: str = ""
    #: The proof ran on another major than the target's: both sides compared `portable`.
    across_majors: bool = False

    @property
    def matches(self) -> bool:
        return not self.differences

    @property
    def versions(self) -> tuple[str, ...]:
        return tuple(m.version for m in self.migrations)


@dataclass(frozen=True)
class BaselineResult:
    """What `baseline` recorded: the versions, under which run id, and whether it was forced;
    and the project's `lint_since` after it."""

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


def schema_of(conn: Any, schema: str, *, across_majors: bool = False) -> Fingerprint:
    """The fingerprint a baseline compares of ``conn``'s database (see `comparable`)."""
    return comparable(fingerprint(conn, (schema,)), across_majors=across_majors)


def comparable(printed: Fingerprint, *, across_majors: bool = False) -> Fingerprint:
    """``printed`` as a baseline compares it: other tools' tables left out, and a schema's
    owner too (the scratch server's user is not the target's); ``across_majors``: in the
    terms every major shares (fingerprint.portable).
    """
    if across_majors:
        printed = portable(printed)
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
    wanted = plan_pending(migrations, History(), version).steps
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


def tool_tables_for(migrations: Sequence[Migration], target: Target) -> list[ToolTable]:
    """Other tools' tables the ``migrations`` refer to and do not create, as ``target`` has
    them: the scratch database needs them before the migrations run."""
    from pgshift.source.references import named_tables

    texts = [st.sql for m in migrations for st in m.statements]
    referred, created = named_tables(texts, BOOKKEEPING_TABLES)
    wanted = referred - created
    if not wanted:
        return []
    return read_tool_tables(target.session, sorted(wanted), (target.schema,))


def prove(
    migrations: Sequence[Migration],
    version: str,
    server: ScratchServer,
    options: RunOptions,
    tool_tables: Sequence[ToolTable] = (),
) -> tuple[Fingerprint, ScratchDatabase]:
    """The schema the migrations up to ``version`` build, run by `up`'s Runner on a scratch
    database of ``server`` (dropped after, whatever happens), and that database.

    The schema is fingerprinted raw: the caller knows whether it compares across majors. A
    migration failing there raises an error that says it failed on the scratch database.
    """
    with server.database("baseline") as made:
        try:
            with Target(
                made.url,
                schema=options.schema,
                purpose="baseline proof",
                runner_lock_wait_ms=options.runner_lock_wait_ms,
                allow_pooler=options.allow_pooler,
            ) as scratch:
                create_tool_tables(scratch.session, tool_tables)
                plan = plan_pending(migrations, scratch.read_history(), version)
                Runner(scratch, options).run(plan)
                return fingerprint(scratch.session, (options.schema,)), made
        except MigrationFailed as exc:
            raise failed_on_scratch(exc, made, version) from None


def failed_on_scratch(exc: MigrationFailed, made: ScratchDatabase, version: str) -> MigrationFailed:
    """The runner's error, restated as what it is: the proof failed on a scratch database.

    Its first line (file, line, the server's error) is kept; what the runner adds about the
    migration's state is about the scratch database, which is gone, so it is replaced. A
    timeout keeps its exit code (5); any other failure is 1 (a half-applied proof needs no
    recovery: the database is dropped).
    """
    from pgshift.errors import MigrationTimeout

    first = exc.message.splitlines()[0] if exc.message else "a migration failed"
    message = (
        f"the proof of the migrations up to {version} failed on a {made.describe()},"
        f" not on the target (nothing was changed there): {first}"
    )
    kind = MigrationTimeout if isinstance(exc, MigrationTimeout) else MigrationFailed
    return kind(
        message,
        version=exc.version,
        sqlstate=exc.sqlstate,
        hint="the migration fails on a new database; fix it, or baseline at an earlier version",
    )


def plan_baseline(
    project: Project, target: Target, version: str, *, scratch_url: str | None = None
) -> BaselinePlan:
    """What `baseline V` would record, proven: the migrations up to ``version`` (plan order,
    with their dependencies) run with `up`'s Runner on a scratch database (``scratch_url``'s
    server; else the target's own server when its role may create a database; else the
    embedded one, started if needed), and its schema compared with the target's, pgshift's
    schema and other tools' bookkeeping tables left out (``plan.proven_on`` says where).

    ``plan.differences`` lists a mismatch; the target is only read. Refuses (UsageError, exit 2)
    a history with a failed or half-applied migration, or one applied beyond the baseline;
    refuses drift (exit 4); a migration that fails on the scratch database raises the runner's
    error.
    """
    from pgshift.ops.scratch import scratch_server

    migrations = project.migrations
    server = scratch_server(project.settings, target.url, scratch_url)
    chosen = select(migrations, target.read_history(), version)
    options = RunOptions.from_settings(target.settings)
    wanted = plan_pending(migrations, History(), version).steps
    tools = tool_tables_for([s.migration for s in wanted], target)
    printed, made = prove(migrations, version, server, options, tools)
    across = made.major != target.facts.major
    expected = comparable(printed, across_majors=across)
    actual = schema_of(target.session, target.schema, across_majors=across)
    found = tuple(differences(expected, actual))
    return BaselinePlan(
        chosen.version,
        chosen.migrations,
        chosen.already,
        found,
        expected,
        tuple(migrations),
        proven_on=made.describe(),
        across_majors=across,
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
    every `baseline` event says it was forced and lists the differences. Then sets the
    project's `lint_since` to the baseline's version (``result.lint_since``).
    """
    found: list[str] = []

    def check(history: History) -> list[tuple[Migration, Mapping[str, Any]]]:
        fresh = select(plan.project, history, plan.version)
        actual = schema_of(target.session, target.schema, across_majors=plan.across_majors)
        found[:] = differences(plan.expected, actual)
        if found and not force:
            raise mismatch(plan.version, found, plan.proven_on)
        detail: dict[str, Any] = {"baseline": plan.version, "forced": bool(found)}
        if found:
            detail["differences"] = found
        return [(m, detail) for m in fresh.migrations]

    run_id, versions = record_adopted(target, EVENT_BASELINE, check)
    since = write_lint_since(target.settings.project.root, plan.version)
    return BaselineResult(run_id, versions, bool(found), tuple(found), since)


def mismatch(version: str, found: Sequence[str], proven_on: str = "") -> DriftError:
    shown = "\n".join(f"  {line}" for line in found)
    where = f" on a {proven_on}" if proven_on else ""
    return DriftError(
        f"the database's schema is not what the migrations up to {version} build{where}"
        f" ({len(found)} difference(s); 'missing' = the database lacks it, 'left behind' = only"
        f" the database has it):\n{shown}",
        hint="baseline at the version the database really is at, or pass --force to record"
        " them anyway (logged)",
    )
