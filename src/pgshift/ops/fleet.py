"""Many targets: the single-target path run per target, in waves, a bounded pool, or a shared run.

DESIGN.md principle 7: a fleet is the single-target path run per target. One target's `up`
(up_target) plans it with ops/planning.py and runs it with ops/run.py, exactly as `pgshift up`
does, on that target's own Target. The scheduler below is handed that ``work`` and decides only
which target runs when: the canary wave first, at most ``concurrency`` at once, no new target
after ``max_failures`` failures. With a control database (a RunBoard, db/control.py) the targets
are claimed from a shared run table instead, so several processes on several machines share one
rollout and a dead worker's targets are taken over once its lease expires.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

from pgshift import events as ev
from pgshift.config import Settings
from pgshift.errors import BUG_EXIT_CODE, DatabaseUnavailable, PgshiftError
from pgshift.fleet_targets import TargetSpec, waves
from pgshift.ops.planning import SharedPlanner

if TYPE_CHECKING:
    from pgshift.db.control import RunRow
    from pgshift.db.pool import SessionPool
    from pgshift.db.target import Target
    from pgshift.history import History
    from pgshift.plan import MigrationState
    from pgshift.project_files import Project

T = TypeVar("T")
S = TypeVar("S")

APPLIED, UP_TO_DATE, FAILED, NOT_STARTED = "applied", "up-to-date", "failed", "not-started"


@dataclass(frozen=True)
class TargetOutcome:
    """What happened to one target in a fleet command."""

    target: str
    status: str  # APPLIED, UP_TO_DATE, FAILED, NOT_STARTED
    exit_code: int = 0
    applied: int = 0
    versions: tuple[str, ...] = ()  # what was planned (fleet plan) or run (fleet up)
    message: str | None = None
    run_id: str | None = None
    duration_ms: int = 0


@dataclass(frozen=True)
class FleetResult:
    """One outcome per target, in the order of the targets; the exit code is the worst one."""

    outcomes: tuple[TargetOutcome, ...]
    #: fleet_plan's only, when no target had anything to apply or when it planned from its one
    #: read alone (``on_targets=False``): every target's history as the plan read it (or the
    #: error reading it gave). fleet_up(plan=...) then decides from these instead of reading
    #: every history again. None when some target has work and was planned on its own
    #: session: time passes at the prompt, so the run reads again.
    histories: Mapping[TargetSpec, History | PgshiftError] | None = field(
        default=None, repr=False, compare=False
    )

    @property
    def exit_code(self) -> int:
        return max((o.exit_code for o in self.outcomes), default=0)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def applied(self) -> int:
        return sum(o.applied for o in self.outcomes)


@dataclass(frozen=True)
class FleetOptions:
    concurrency: int = 8
    canary: int | None = None  # --canary N; else the targets labelled canary
    max_failures: int | None = None  # stop starting targets after this many failures


#: Does one target, reporting its events: up_target's work, or a test's.
Work = Callable[[TargetSpec, ev.Emit], TargetOutcome]


# -- the targets and their Targets ---------------------------------------------------------------


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
    from pgshift import fleet_targets as ft
    from pgshift.errors import UsageError

    if (file is None) == (query is None):
        raise UsageError("name the targets with a targets file or with --targets-query, not both")
    if file is not None:
        path = Path(file)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read the targets file {path}: {exc.strerror}") from None
        specs = ft.parse_targets(text, str(path))
    else:
        if control_url is None:
            raise UsageError("--targets-query runs on the control database: give --control-url")
        from pgshift.db.control import query_targets

        assert query is not None
        specs = ft.targets_from_rows(query_targets(control_url, query), "--targets-query")
    if shard is not None:
        try:
            index, count = ft.parse_shard(shard)
        except ValueError as exc:
            raise UsageError(f"bad --shard: {exc}") from None
        specs = ft.in_shard(specs, index, count)
    return specs


def target_settings(settings: Settings, spec: TargetSpec) -> Settings:
    """The settings of one target of a fleet: its URL, its history schema, its backup folder."""
    connection = replace(
        settings.connection, url=spec.url, schema=spec.history_schema(settings.connection.schema)
    )
    backup = replace(settings.backup, dir=settings.backup.dir / spec.name)
    return replace(settings, connection=connection, backup=backup)


def connect_target(
    settings: Settings,
    spec: TargetSpec,
    *,
    purpose: str = "runner",
    pool: SessionPool | None = None,
) -> Target:
    """The Target of one fleet target (its tenant schema as the session's search_path), its
    sessions taken from ``pool`` (the fleet run's, db/pool.py) when given."""
    from pgshift.db.target import Target

    return Target.from_settings(
        target_settings(settings, spec),
        spec.url,
        purpose=purpose,
        tenant_schema=spec.schema,
        pool=pool,
    )


def read_histories(
    settings: Settings, targets: Sequence[TargetSpec], concurrency: int, purpose: str
) -> dict[str, History | PgshiftError]:
    """Every target's history, read over ONE read-only session per database (same URL).

    The tenants of one database are read together (db/store.read_histories: one statement
    for which histories exist, then one per 25 tenants), so a fleet of tenants with nothing
    to do costs one session, not one per tenant. A database that cannot be read gives its
    error to each of its targets.
    """
    from pgshift.db.store import read_histories as read

    by_url: dict[str, list[TargetSpec]] = {}
    for spec in targets:
        by_url.setdefault(spec.url, []).append(spec)

    def one(group: list[TargetSpec]) -> dict[str, History | PgshiftError]:
        schemas = [s.history_schema(settings.connection.schema) for s in group]
        try:
            found = read(group[0].url, schemas, purpose)
        except PgshiftError as exc:
            return {s.name: exc for s in group}
        return {s.name: found[schema] for s, schema in zip(group, schemas, strict=True)}

    histories: dict[str, History | PgshiftError] = {}
    for part in map_targets(list(by_url.values()), one, concurrency):
        histories.update(part)
    return histories


# -- one target's `up`, and the fleet's --------------------------------------------------------


def up_target(
    project: Project,
    backup: bool,
    histories: Mapping[str, History | PgshiftError],
    pool: SessionPool | None = None,
) -> Work:
    """One target's `up`: connect, plan (ops/planning.py), run (ops/run.py), as an outcome.

    ``histories`` were read beforehand, one session per database (read_histories): a target
    they show up to date is done without a session of its own; any other (pending, failed,
    or not read) opens its Target, is planned there from that read (or from a read on its
    session, when the fleet's failed) and runs under its own lock, which checks the plan
    against the history read again under it, as always. With a ``pool``, a target takes its
    sessions from the ones the targets before it on the same database gave back (db/pool.py).
    """
    planner = SharedPlanner(project)

    def work(spec: TargetSpec, emit: ev.Emit) -> TargetOutcome:
        read = histories.get(spec.name)
        if isinstance(read, DatabaseUnavailable):
            raise read
        history = None if isinstance(read, PgshiftError) else read
        if history is not None and not planner.plan_from(history).steps:
            return TargetOutcome(spec.name, UP_TO_DATE)
        return _run_target(project, planner, spec, history, emit, backup, pool)

    return work


def _run_target(
    project: Project,
    planner: SharedPlanner,
    spec: TargetSpec,
    history: History | None,
    emit: ev.Emit,
    backup: bool,
    pool: SessionPool | None,
) -> TargetOutcome:
    """A target the fleet's read did not show up to date: planned on its own Target (from
    ``history``, the fleet's read of it, when it could be read) and run (ops/run.py) under its
    own lock. Its sessions go back to ``pool`` only when it did not fail (Target.close).

    The runner's modules are imported here, not with this module: a fleet with nothing to do
    (`fleet up` with nothing pending, `fleet status`) never needs them.
    """
    target = connect_target(project.settings, spec, pool=pool)
    outcome: TargetOutcome | None = None
    try:
        outcome = _plan_and_run(planner, target, spec, history, emit, backup)
        return outcome
    finally:
        target.close(reuse=outcome is not None and outcome.status != FAILED)


def _plan_and_run(
    planner: SharedPlanner,
    target: Target,
    spec: TargetSpec,
    history: History | None,
    emit: ev.Emit,
    backup: bool,
) -> TargetOutcome:
    """_run_target's work on its open Target; a run's failure is the outcome, not raised, so
    that _run_target knows whether the sessions may be handed on."""
    from pgshift.ops.apply import RunResult
    from pgshift.ops.run import run_plan

    plan = planner.plan(target, history)
    if not plan.steps:
        return TargetOutcome(spec.name, UP_TO_DATE)
    try:
        result = run_plan(plan, target, emit=emit, backup=backup)
    except PgshiftError as exc:
        done = exc.result or RunResult("", ())
        return TargetOutcome(
            spec.name,
            FAILED,
            exc.exit_code,
            sum(1 for s in done.steps if s.status == "applied"),
            plan.versions,
            exc.message,
            done.run_id or None,
        )
    applied = sum(1 for s in result.steps if s.status == "applied")
    return TargetOutcome(spec.name, APPLIED, 0, applied, plan.versions, run_id=result.run_id)


def up_in_waves(
    project: Project,
    targets: Sequence[TargetSpec],
    options: FleetOptions,
    *,
    backup: bool = True,
    emit: ev.FleetEmit = ev.ignore_fleet,
    control_url: str | None = None,
    run: str | None = None,
    worker: str | None = None,
    lease_s: float = 30.0,
    plan: FleetResult | None = None,
) -> FleetResult:
    """Read every history first (read_histories), then up_target per target: in waves on this
    machine, or claimed from the run ``run`` of the control database at ``control_url``.

    ``plan`` is the fleet_plan just shown for these targets: when it found nothing to apply,
    the histories it read stand for this run's read (planned_histories).
    """
    histories = planned_histories(plan, targets)
    if histories is None:
        histories = read_histories(project.settings, targets, options.concurrency, "plan")
    from pgshift.db.pool import SessionPool

    with SessionPool(max_idle=2 * options.concurrency) as pool:
        work = up_target(project, backup, histories, pool)
        if control_url is None:
            return run_fleet(targets, work, options, emit)
        from pgshift.db.control import ControlBoard

        board = ControlBoard(control_url, run or fleet_run_name(project))
        try:
            claim = ClaimOptions(worker or _worker_name(), lease_s)
            return run_claimed(targets, work, options, board, claim, emit)
        finally:
            board.close()


def fleet_plan(
    project: Project,
    targets: Sequence[TargetSpec],
    *,
    concurrency: int = 8,
    on_targets: bool = True,
) -> FleetResult:
    """What `fleet up` would do: each target planned on its own (reads, never writes).

    A target with something to do is ``pending`` with the versions in ``versions``; one that
    cannot be planned (unreachable, drift) or whose pre-flight predicts a failure is
    ``failed`` with its exit code and message. Every target is planned from the fleet's one
    read (read_histories); only those with work, planned ``concurrency`` at a time, take a
    session for what planning asks of the server (the lint gate's major, pre-flight's facts)
    and hand it on to the next target of the same database (db/pool.py).

    ``on_targets=False`` (`fleet up --yes`: nobody reads the plan before the run starts)
    plans from that one read alone: a target with work is ``pending`` without a session of its
    own, because its run plans it again on its own session under its lock anyway (lint,
    pre-flight and all, a refusal being that target's failure), and the read is kept for the
    run (planned_histories). It spares every such target a connection and a second planning.
    """
    planner = SharedPlanner(project)
    histories = read_histories(project.settings, targets, concurrency, "plan")
    outcomes: dict[str, TargetOutcome] = {}
    with_work = _plan_from_read(planner, targets, histories, outcomes, on_targets=on_targets)

    from pgshift.db.pool import SessionPool

    with SessionPool(max_idle=concurrency) as pool:

        def on_its_session(work: tuple[TargetSpec, History]) -> TargetOutcome:
            """Linting needs the server's version, and pre-flight its facts: a session."""
            from pgshift.ops.run import refuse_preflight

            spec, read = work
            target = connect_target(project.settings, spec, purpose="plan", pool=pool)
            planned = False
            try:
                plan = planner.plan(target, read)
                planned = True
                refuse_preflight(plan)
            except PgshiftError as exc:
                return _failed(spec, exc)
            finally:
                target.close(reuse=planned)
            status = "pending" if plan.steps else UP_TO_DATE
            return TargetOutcome(spec.name, status, versions=plan.versions)

        for outcome in map_targets(with_work, on_its_session, concurrency):
            outcomes[outcome.target] = outcome
    found = tuple(outcomes[spec.name] for spec in targets)
    if with_work:
        return FleetResult(found)
    return FleetResult(found, {spec: histories[spec.name] for spec in targets})


def _plan_from_read(
    planner: SharedPlanner,
    targets: Sequence[TargetSpec],
    histories: Mapping[str, History | PgshiftError],
    outcomes: dict[str, TargetOutcome],
    *,
    on_targets: bool,
) -> list[tuple[TargetSpec, History]]:
    """Every target planned from the fleet's one read into ``outcomes``; the targets with work
    that are to be planned again on their own session (all of them with ``on_targets``), each
    with its read."""
    with_work: list[tuple[TargetSpec, History]] = []
    for spec in targets:  # pure, ~35 us a target: less than handing it to a thread
        try:
            history = histories[spec.name]
            if isinstance(history, PgshiftError):
                raise history
            plan = planner.plan_from(history)
        except PgshiftError as exc:
            outcomes[spec.name] = _failed(spec, exc)
            continue
        if plan.steps and on_targets:
            with_work.append((spec, history))
        else:
            status = "pending" if plan.steps else UP_TO_DATE
            outcomes[spec.name] = TargetOutcome(spec.name, status, versions=plan.versions)
    return with_work


def _failed(spec: TargetSpec, exc: PgshiftError) -> TargetOutcome:
    return TargetOutcome(spec.name, FAILED, exc.exit_code, message=exc.message)


def planned_histories(
    plan: FleetResult | None, targets: Sequence[TargetSpec]
) -> dict[str, History | PgshiftError] | None:
    """The histories ``plan`` read, by target name, when they may stand for a run's read of
    ``targets``; None when the run must read them itself.

    Only a plan that found nothing to apply, or one made from the read alone for a run that
    follows at once (fleet_plan's ``on_targets=False``), keeps them, and only for exactly these
    targets. Taking them is safe for the same reason the run's own read is: that read only
    spares a target shown up to date its session, while a target with work still opens its own
    Target and plans again under its lock (up_target). What it assumes is that little time
    passed since the plan: `fleet up` asks nothing when nothing is pending or with `--yes`,
    so there the two follow each other at once.
    """
    if plan is None or plan.histories is None or len(plan.histories) != len(targets):
        return None
    if not all(spec in plan.histories for spec in targets):
        return None
    return {spec.name: plan.histories[spec] for spec in targets}


def fleet_run_name(project: Project) -> str:
    """The default run of a control database: one per set of migrations (head + checksum), so
    the next deploy starts a new run while re-running this one resumes it."""
    import hashlib

    digest = hashlib.sha256("".join(m.checksum for m in project.migrations).encode())
    head = project.migrations[-1].version if project.migrations else "empty"
    return f"{head}-{digest.hexdigest()[:12]}"


def _worker_name() -> str:
    import os
    import socket
    import uuid

    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def fleet_run(control_url: str, run: str) -> FleetResult:
    """The shared run ``run`` of a control database as it stands (`fleet status --control-url`)."""
    from pgshift.db.control import ControlBoard

    board = ControlBoard(control_url, run)
    try:
        return FleetResult(tuple(run_outcomes(board.rows())))
    finally:
        board.close()


def guarded(work: Work, spec: TargetSpec, emit: ev.FleetEmit) -> TargetOutcome:
    """Run ``work`` for one target; whatever it raises becomes that target's failure.

    A fleet must survive one target's surprise: a PgshiftError keeps its exit code, anything
    else is reported as a bug (70) of that target only.
    """
    emit(ev.TargetStarted(spec.name))
    started = time.monotonic()
    try:
        outcome = work(spec, lambda event: emit(ev.TargetEvent(spec.name, event)))
    except PgshiftError as exc:
        outcome = TargetOutcome(spec.name, FAILED, exc.exit_code, message=exc.message)
    except Exception as exc:
        outcome = TargetOutcome(spec.name, FAILED, BUG_EXIT_CODE, message=f"{type(exc).__name__}")
    if not outcome.duration_ms:
        ms = int((time.monotonic() - started) * 1000)
        outcome = replace(outcome, duration_ms=ms)
    emit(
        ev.TargetFinished(
            spec.name, outcome.status, outcome.exit_code, outcome.applied, outcome.message
        )
    )
    return outcome


def serialized(emit: ev.FleetEmit) -> ev.FleetEmit:
    """``emit`` made safe to call from the pool's threads (one event at a time)."""
    lock = threading.Lock()

    def emit_one(event: ev.FleetEvent) -> None:
        with lock:
            emit(event)

    return emit_one


def map_targets(specs: Sequence[S], fn: Callable[[S], T], concurrency: int) -> list[T]:
    """``fn`` over every target (or group of targets) in a bounded pool, results in order."""
    if concurrency <= 1 or len(specs) <= 1:
        return [fn(s) for s in specs]
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="pgshift-fleet") as pool:
        return list(pool.map(fn, specs))


# -- one machine: waves in a bounded pool ------------------------------------------------------


@dataclass
class _Tally:
    """Counts shared by the waves: what --max-failures and the progress line look at."""

    total: int
    emit: ev.FleetEmit
    max_failures: int | None
    done: int = 0
    failed: int = 0
    outcomes: dict[str, TargetOutcome] = field(default_factory=dict)

    @property
    def stopped(self) -> bool:
        return self.max_failures is not None and self.failed >= self.max_failures

    def record(self, outcome: TargetOutcome) -> None:
        self.outcomes[outcome.target] = outcome
        if outcome.status == FAILED:
            self.failed += 1
        elif outcome.status != NOT_STARTED:
            self.done += 1
        remaining = self.total - self.done - self.failed
        self.emit(ev.FleetProgress(self.done, self.failed, remaining))


def run_fleet(
    specs: Sequence[TargetSpec],
    work: Work,
    options: FleetOptions,
    emit: ev.FleetEmit = ev.ignore_fleet,
) -> FleetResult:
    """The canary wave, then (only if no canary failed) the rest, each in a bounded pool."""
    emit = serialized(emit)
    canary, rest = waves(specs, options.canary)
    tally = _Tally(len(specs), emit, options.max_failures)
    if canary:
        emit(ev.WaveStarted("canary", len(canary)))
        _run_wave(canary, work, options.concurrency, tally)
    if canary and tally.failed:
        why = "not started: a canary target failed"
        _not_started(rest, tally, why)
    elif rest:
        emit(ev.WaveStarted("rest", len(rest)))
        _run_wave(rest, work, options.concurrency, tally)
    return FleetResult(tuple(tally.outcomes[s.name] for s in specs))


def _not_started(specs: Sequence[TargetSpec], tally: _Tally, why: str) -> None:
    for spec in specs:
        tally.outcomes[spec.name] = TargetOutcome(spec.name, NOT_STARTED, message=why)


def _run_wave(specs: Sequence[TargetSpec], work: Work, concurrency: int, tally: _Tally) -> None:
    """At most ``concurrency`` targets at once; none started once max_failures is reached."""
    queue: Iterator[TargetSpec] = iter(specs)
    running: set[Future[TargetOutcome]] = set()
    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="pgshift") as pool:
        while True:
            while len(running) < max(1, concurrency) and not tally.stopped:
                spec = next(queue, None)
                if spec is None:
                    break
                running.add(pool.submit(guarded, work, spec, tally.emit))
            if not running:
                break
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                tally.record(future.result())
    _not_started(list(queue), tally, "not started: --max-failures was reached")


# -- many machines: a run table in a control database -----------------------------------------


class RunBoard(Protocol):
    """The shared run of a control database (db/control.py), as the workers use it.

    Every method is one short statement; the board serializes its callers.
    """

    def register(self, specs: Sequence[tuple[TargetSpec, int]]) -> None:
        """Add the targets with their wave (0 canary, 1 rest) unless already there."""

    def retry_failed(self) -> int:
        """Put the run's failed targets back to pending (a re-run retries them)."""

    def claim(self, worker: str, lease_s: float, max_failures: int | None) -> str | None:
        """One target this worker now holds under a lease, or None."""

    def heartbeat(self, worker: str, lease_s: float) -> None:
        """Extend the leases of the targets this worker is running."""

    def finish(
        self,
        worker: str,
        target: str,
        *,
        state: str,
        status: str,
        exit_code: int,
        applied: int,
        message: str | None,
    ) -> None: ...

    def busy(self) -> bool:
        """Another worker still runs a target under a live lease (so waiting may pay)."""

    def rows(self) -> list[RunRow]:
        """Every target of the run as it stands."""


def run_outcomes(rows: Sequence[RunRow]) -> list[TargetOutcome]:
    """The run table's rows as outcomes: done and failed as recorded, the others not started."""
    found = []
    for row in rows:
        if row.state in ("done", "failed"):
            status = FAILED if row.state == "failed" else (row.status or APPLIED)
            found.append(
                TargetOutcome(row.target, status, row.exit_code, row.applied, (), row.message)
            )
        else:
            why = f"running on {row.owner}" if row.state == "running" else "pending"
            found.append(TargetOutcome(row.target, NOT_STARTED, message=why))
    return found


def _finish(board: RunBoard, worker: str, outcome: TargetOutcome) -> None:
    state = {FAILED: "failed", NOT_STARTED: "pending"}.get(outcome.status, "done")
    board.finish(
        worker,
        outcome.target,
        state=state,
        status=outcome.status,
        exit_code=outcome.exit_code,
        applied=outcome.applied,
        message=outcome.message,
    )


@dataclass(frozen=True)
class ClaimOptions:
    worker: str
    lease_s: float = 30.0
    poll_s: float = 0.5


def run_claimed(
    specs: Sequence[TargetSpec],
    work: Work,
    options: FleetOptions,
    board: RunBoard,
    claim: ClaimOptions,
    emit: ev.FleetEmit = ev.ignore_fleet,
) -> FleetResult:
    """Work on the shared run until no target is left to claim and nobody else is running one.

    ``concurrency`` threads each claim a target, run it, record it, and claim the next; a
    heartbeat thread keeps the leases alive. The result is the whole run's, not only this
    worker's part, so every worker's exit code tells whether the rollout succeeded.
    """
    emit = serialized(emit)
    canary, _ = waves(specs, options.canary)
    in_canary = {s.name for s in canary}
    board.register([(s, 0 if s.name in in_canary else 1) for s in specs])
    board.retry_failed()
    by_name = {s.name: s for s in specs}
    failures: list[PgshiftError] = []
    stop = threading.Event()
    beat = threading.Thread(
        target=_heartbeat, args=(board, claim, stop), name="pgshift-heartbeat", daemon=True
    )
    beat.start()
    try:
        threads = [
            threading.Thread(
                target=_claim_loop,
                args=(board, claim, options, by_name, work, emit, failures),
                daemon=True,
            )
            for _ in range(max(1, options.concurrency))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        stop.set()
        beat.join()
    if failures:
        raise failures[0]
    found = {o.target: o for o in run_outcomes(board.rows())}
    return FleetResult(tuple(found.get(s.name, TargetOutcome(s.name, NOT_STARTED)) for s in specs))


def _heartbeat(board: RunBoard, claim: ClaimOptions, stop: threading.Event) -> None:
    while not stop.wait(claim.lease_s / 3):
        try:
            board.heartbeat(claim.worker, claim.lease_s)
        except PgshiftError:
            continue  # the next beat tries again; a lease lost meanwhile is taken over


def _claim_loop(
    board: RunBoard,
    claim: ClaimOptions,
    options: FleetOptions,
    by_name: dict[str, TargetSpec],
    work: Work,
    emit: ev.FleetEmit,
    failures: list[PgshiftError],
) -> None:
    """Claim, run, record, until nothing is left; a control database error stops this thread."""
    try:
        while _claim_one(board, claim, options, by_name, work, emit):
            pass
    except PgshiftError as exc:
        failures.append(exc)


def _claim_one(
    board: RunBoard,
    claim: ClaimOptions,
    options: FleetOptions,
    by_name: dict[str, TargetSpec],
    work: Work,
    emit: ev.FleetEmit,
) -> bool:
    """Claim and run one target; False once there is nothing left to wait for."""
    name = board.claim(claim.worker, claim.lease_s, options.max_failures)
    if name is None:
        if not board.busy():
            return False
        time.sleep(claim.poll_s)
        return True
    spec = by_name.get(name)
    if spec is None:  # a target of the run this worker's targets list does not know
        outcome = TargetOutcome(name, FAILED, 2, message="not in this worker's targets")
    else:
        outcome = guarded(work, spec, emit)
    _finish(board, claim.worker, outcome)
    return True


# -- fleet status ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetStatus:
    """One row of `fleet status`: where one target stands."""

    target: str
    head: str | None  # the newest applied version
    applied: int
    pending: int
    failed: int
    drifted: int  # applied files changed or gone
    last_run: str | None  # when the newest applied migration was applied (ISO 8601)
    error: str | None = None  # the target could not be read
    exit_code: int = 0
    # In their expand phase (`@expand-contract`): applied, both shapes served until contract.
    expanded: int = 0

    @property
    def state(self) -> str:
        if self.error is not None:
            return "unreachable" if self.exit_code == 3 else "error"
        if self.drifted:
            return "drifted"
        if self.failed:
            return "failed"
        return "pending" if self.pending else "up-to-date"


@dataclass(frozen=True)
class FleetStatus:
    """`fleet status`: one row per target and the summary; the exit code is the worst row's."""

    rows: tuple[TargetStatus, ...]

    def count(self, state: str) -> int:
        return sum(1 for r in self.rows if r.state == state)

    @property
    def exit_code(self) -> int:
        """0 all at head; 1 something pending or failed; 4 drift; 3 a target unreachable."""
        codes = [r.exit_code if r.error else 0 for r in self.rows]
        codes += [4 for r in self.rows if r.drifted]
        codes += [1 for r in self.rows if r.failed or r.pending]
        return max(codes, default=0)


def fleet_status(
    project: Project, targets: Sequence[TargetSpec], *, concurrency: int = 8
) -> FleetStatus:
    """One row per target (head, pending, failed, drifted, last run); reads, never writes.

    An unreachable target is a row with its error (exit code 3), not an exception.
    """
    from pgshift.plan import migration_states

    histories = read_histories(project.settings, targets, concurrency, "status")

    def one(spec: TargetSpec) -> TargetStatus:
        history = histories[spec.name]
        if isinstance(history, PgshiftError):
            exc = history
            return TargetStatus(spec.name, None, 0, 0, 0, 0, None, exc.message, exc.exit_code)
        return target_status(spec.name, migration_states(project.migrations, history))

    return FleetStatus(tuple(one(spec) for spec in targets))


def target_status(name: str, states: Sequence[MigrationState]) -> TargetStatus:
    """A target's row from its migrations' states (plan.migration_states)."""
    from pgshift import plan as planning

    applied = [s for s in states if s.applied is not None and not s.half_reverted]
    head = max((s.version for s in applied), default=None)
    last = max((s.applied.applied_at for s in applied if s.applied is not None), default=None)
    return TargetStatus(
        target=name,
        head=head,
        applied=len(applied),
        pending=sum(
            1
            for s in states
            if s.state in (planning.PENDING, planning.OUT_OF_ORDER) and not s.half_reverted
        ),
        failed=sum(1 for s in states if s.state == planning.FAILED),
        drifted=sum(1 for s in states if s.state in (planning.DRIFTED, planning.MISSING)),
        last_run=last.isoformat() if last is not None else None,
        expanded=sum(1 for s in states if s.state == planning.EXPANDED),
    )
