"""What the database remembers about migrations: applied rows, in-flight progress and failures."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class AppliedMigration:
    """One row of the applied-migrations table."""

    version: str
    description: str
    checksum: str
    rollback_checksum: str | None
    applied_at: datetime
    duration_ms: int
    applied_by: str
    host: str | None
    run_id: str
    metadata: Mapping[str, Any] = field(default_factory=dict)
    # The rollback file's text when it was applied (None: it had none, or it was applied before
    # pgshift stored it), so a rollback still works once the files are gone (a downgrade).
    rollback_sql: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Progress:
    """How far a migration that runs partly outside a transaction got before it stopped.

    ``prefix_checksum`` covers the text of the statements already done, so a resumed run can
    tell whether the author edited what already ran (drift) or only what is still to come.
    """

    version: str
    checksum: str
    prefix_checksum: str
    statements_done: int
    run_id: str
    updated_at: datetime
    action: str = "apply"  # "revert" while its rollback file is part-way through


@dataclass(frozen=True)
class Expect:
    """The progress row a history write expects to find for its version: compare-and-set.

    ``action`` None means no row. A run knows where it left a migration's progress (or where
    the history it read under the lock left it); each write that moves it goes through only
    while the row is still exactly that, in the transaction of the statements it counts, so an
    earlier run's orphaned session can never make a statement count twice unnoticed: the
    write fails, and the statements of its transaction are rolled back with it.
    """

    action: str | None = None
    statements_done: int = 0

    @classmethod
    def of(cls, progress: Progress | None) -> Expect:
        if progress is None:
            return cls()
        return cls(progress.action, progress.statements_done)

    def matches(self, progress: Progress | None) -> bool:
        if progress is None:
            return self.action is None
        return (progress.action, progress.statements_done) == (
            self.action,
            self.statements_done,
        )

    def describe(self) -> str:
        if self.action is None:
            return "no progress recorded"
        return f"{self.action} progress at statement {self.statements_done}"


class ProgressMoved(Exception):
    """A compare-and-set history write found the progress elsewhere than it expected."""

    def __init__(self, version: str, expected: Expect) -> None:
        super().__init__(
            f"the progress of {version} is not where this run left it ({expected.describe()}):"
            " another session moved it"
        )
        self.version = version
        self.expected = expected


@dataclass(frozen=True)
class BackfillProgress:
    """How far an unfinished backfill (SPEC 14) got: running now, or stopped and waiting for a
    re-run to continue it. ``keys_done`` is what ``rows_estimate`` (the planner's) counts."""

    version: str
    action: str  # "apply", or "revert" for a rollback file that is a backfill
    keys_done: int
    rows_done: int
    rows_estimate: int | None
    batches: int
    updated_at: datetime | None = None

    @property
    def percent(self) -> float | None:
        """Keys done of the estimate, at most 100 (an estimate can be low); None: unknown."""
        if not self.rows_estimate:
            return None
        return min(100.0, 100.0 * self.keys_done / self.rows_estimate)


@dataclass(frozen=True)
class History:
    """Everything `plan` needs from the database, read in one go."""

    applied: tuple[AppliedMigration, ...] = ()
    in_progress: tuple[Progress, ...] = ()
    failed: frozenset[str] = frozenset()  # versions whose latest attempt failed, not applied
    backfills: tuple[BackfillProgress, ...] = ()  # unfinished backfills only
    #: The digest of exactly what this history was read from (db/store.py): two reads with one
    #: digest decide alike, which is what lets a no-op be remembered (ops/uptodate.py). "" when
    #: unknown (the in-memory store): nothing is then remembered.
    digest: str = field(default="", compare=False)

    def backfill_of(self, version: str, action: str) -> BackfillProgress | None:
        for b in self.backfills:
            if b.version == version and b.action == action:
                return b
        return None

    def applied_versions(self) -> dict[str, AppliedMigration]:
        return {a.version: a for a in self.applied}

    def progress_of(self, version: str, action: str | None = None) -> Progress | None:
        for p in self.in_progress:
            if p.version == version and (action is None or p.action == action):
                return p
        return None


EVENT_APPLIED = "migration_applied"
EVENT_FAILED = "migration_failed"
EVENT_REVERTED = "migration_reverted"
EVENT_CONTRACTED = "migration_contracted"
EVENT_REVERT_FAILED = "revert_failed"


class Session(Protocol):
    """A database session a HistoryStore reads and writes on: the lock's or the runner's psycopg
    connection (db/), a read-only libpq session, or the in-memory store's MemorySession.

    Opaque above db/, which alone looks inside it: the runner only hands the lock's session to
    the store and the monitor, and asks whether it is still open.
    """

    @property
    def closed(self) -> bool: ...


class MemorySession:
    """The session of the in-memory store and its fakes: there is no connection behind it."""

    closed = False


MEMORY_SESSION = MemorySession()


class HistoryStore(Protocol):
    """Where history lives. Writes join the caller's transaction when ``session`` has one.

    ``session`` is the implementation's own (Session): a store refuses one it cannot use.

    The contract (tests/contract/) holds for every implementation:
    * ``read`` of a store nobody wrote to is ``History()``;
    * ``record_applied`` adds the applied row, forgets the version's progress and logs
      ``migration_applied``; ``record_reverted`` removes both and logs ``migration_reverted``;
    * ``save_progress`` keeps one row per version, the newest;
    * a write given ``expect`` (Expect) changes nothing and raises ProgressMoved unless the
      version's progress row is exactly that; ``record_reverted`` with ``expect`` also needs
      something to revert (the applied row, or a progress row);
    * a version is *failed* when, of its applied / failed / reverted events, the newest is a
      failure and it is not applied now;
    * ``last_up_run`` is the newest run whose ``run_started`` event planned an ``apply`` step.
    """

    def read(self, session: Session) -> History: ...

    def log(
        self,
        session: Session,
        run_id: str | None,
        event: str,
        version: str | None = None,
        detail: Mapping[str, object] | None = None,
    ) -> None: ...

    def record_applied(
        self,
        session: Session,
        row: AppliedMigration,
        detail: Mapping[str, object] | None = None,
        *,
        expect: Expect | None = None,
    ) -> None: ...

    def record_reverted(
        self,
        session: Session,
        version: str,
        run_id: str,
        detail: Mapping[str, object] | None = None,
        *,
        expect: Expect | None = None,
    ) -> None: ...

    def record_contracted(
        self, session: Session, version: str, run_id: str, *, expect: Expect | None = None
    ) -> None: ...

    def save_progress(
        self, session: Session, progress: Progress, *, expect: Expect | None = None
    ) -> None: ...

    def clear_progress(self, session: Session, version: str) -> None: ...

    def record_failed(
        self,
        session: Session,
        run_id: str,
        version: str,
        detail: Mapping[str, object],
        *,
        action: str = "apply",
    ) -> None: ...

    def last_up_run(self, session: Session) -> str | None: ...


class MemoryHistoryStore:
    """The HistoryStore contract in plain Python: a fake for tests, and the contract's reference.

    ``session`` is ignored; there are no transactions to join.
    """

    def __init__(self) -> None:
        self.applied: dict[str, AppliedMigration] = {}
        self.progress: dict[str, Progress] = {}
        self.events: list[tuple[str | None, str, str | None, dict[str, Any]]] = []
        #: Unfinished backfills by (version, action): what a test's backfill fake leaves.
        self.backfills: dict[tuple[str, str], BackfillProgress] = {}
        #: Called with the version of each revert recorded: the revert also drops the progress
        #: of the version's apply backfill (db/store.py's reverted_sql), which a backfill fake
        #: keeps finished or not.
        self.on_revert: list[Callable[[str], None]] = []

    def read(self, session: Session | None = None) -> History:
        decisive = {}
        for _, event, version, _ in self.events:
            if version is not None and event in (EVENT_APPLIED, EVENT_FAILED, EVENT_REVERTED):
                decisive[version] = event
        failed = {v for v, e in decisive.items() if e == EVENT_FAILED} - set(self.applied)
        return History(
            tuple(self.applied[v] for v in sorted(self.applied)),
            tuple(self.progress[v] for v in sorted(self.progress)),
            frozenset(failed),
            tuple(self.backfills[k] for k in sorted(self.backfills)),
        )

    def log(
        self,
        session: Session | None,
        run_id: str | None,
        event: str,
        version: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        self.events.append((run_id, event, version, dict(detail or {})))

    def _check(self, version: str, expect: Expect | None) -> None:
        if expect is not None and not expect.matches(self.progress.get(version)):
            raise ProgressMoved(version, expect)

    def record_applied(
        self,
        session: Session | None,
        row: AppliedMigration,
        detail: Mapping[str, Any] | None = None,
        *,
        expect: Expect | None = None,
    ) -> None:
        self._check(row.version, expect)
        if row.version in self.applied:
            raise ValueError(f"{row.version} is already applied")
        self.applied[row.version] = replace(row, applied_at=row.applied_at or datetime.now(UTC))
        self.progress.pop(row.version, None)
        self.log(session, row.run_id, EVENT_APPLIED, row.version, detail)

    def record_reverted(
        self,
        session: Session | None,
        version: str,
        run_id: str,
        detail: Mapping[str, Any] | None = None,
        *,
        expect: Expect | None = None,
    ) -> None:
        self._check(version, expect)
        half_filled = (version, "apply") in self.backfills
        if (
            expect is not None
            and version not in self.applied
            and version not in self.progress
            and not half_filled
        ):
            raise ProgressMoved(version, expect)  # nothing left to revert: another run did
        self.applied.pop(version, None)
        self.progress.pop(version, None)
        self.backfills.pop((version, "apply"), None)  # as the database's reverted_sql does
        for hook in self.on_revert:
            hook(version)
        self.log(session, run_id, EVENT_REVERTED, version, detail)

    def record_contracted(
        self, session: Session | None, version: str, run_id: str, *, expect: Expect | None = None
    ) -> None:
        self._check(version, expect)
        row = self.applied[version]
        record = dict(row.metadata.get("expand") or {}, phase="contracted")
        self.applied[version] = replace(row, metadata={**row.metadata, "expand": record})
        self.progress.pop(version, None)
        self.log(session, run_id, EVENT_CONTRACTED, version, {})

    def save_progress(
        self, session: Session | None, progress: Progress, *, expect: Expect | None = None
    ) -> None:
        self._check(progress.version, expect)
        self.progress[progress.version] = progress

    def clear_progress(self, session: Session | None, version: str) -> None:
        self.progress.pop(version, None)

    def record_failed(
        self,
        session: Session | None,
        run_id: str,
        version: str,
        detail: Mapping[str, Any],
        *,
        action: str = "apply",
    ) -> None:
        event = EVENT_FAILED if action == "apply" else EVENT_REVERT_FAILED
        self.log(session, run_id, event, version, detail)

    def last_up_run(self, session: Session | None = None) -> str | None:
        for run_id, event, _, detail in reversed(self.events):
            steps = detail.get("steps") or []
            if event == "run_started" and run_id and any(s[1] == "apply" for s in steps):
                return str(run_id)
        return None
