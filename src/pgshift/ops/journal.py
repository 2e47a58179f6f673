"""`pgshift history`: the runs recorded in a database's log, one record per run, newest first.

Why here: reading the log is db/journal.py's; what a run *was* (an `up`, a rollback, a
baseline, a manual mark), who ran it from where, how long it took and how it ended is decided
from its events, once, for the command line and the library alike. Read-only and lock-free:
the log is read over one read-only session, as `status` reads the history.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pgshift.db.journal import LogEntry, LogRead, read_log
from pgshift.errors import UsageError

if TYPE_CHECKING:
    from pgshift.db.target import Target

#: How many runs `history` shows when not told.
DEFAULT_LIMIT = 20

#: The event that names a run's kind, when the run has one (else: its first event's name).
_KIND_OF_EVENT = {
    "baseline": "baseline",
    "import": "import",
    "mark": "mark",
    "restore": "restore",
    "backup_taken": "backup",
    "checksums_upgraded": "checksums",
    "health_sample": "monitor",
}


@dataclass(frozen=True)
class RunRecord:
    """One run as its log tells it.

    ``kind``: up, rollback, contract, baseline, import, mark, restore, backup, ...; ``outcome``:
    finished, failed, interrupted, recorded (a run that changes history without running
    migrations: baseline, import, mark), or unfinished (no end was logged: still running, or
    its process died). ``user`` and ``host`` are the operating-system user and machine that
    ran it when the log says so; ``db_user`` is the database role that wrote its events.
    """

    run_id: str | None
    kind: str
    outcome: str
    started_at: datetime
    ended_at: datetime
    user: str | None
    host: str | None
    db_user: str
    duration_ms: int | None
    applied: tuple[str, ...]
    reverted: tuple[str, ...]
    failed: tuple[str, ...]
    error: str | None
    events: tuple[LogEntry, ...]
    contracted: tuple[str, ...] = ()  # expanded migrations this run contracted (SPEC 15)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "kind": self.kind,
            "outcome": self.outcome,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat(),
            "user": self.user,
            "host": self.host,
            "db_user": self.db_user,
            "duration_ms": self.duration_ms,
            "applied": list(self.applied),
            "reverted": list(self.reverted),
            "contracted": list(self.contracted),
            "failed": list(self.failed),
            "error": self.error,
            "events": [
                {
                    "id": e.id,
                    "at": e.at.isoformat(),
                    "event": e.event,
                    "version": e.version,
                    "pid": e.pid,
                    "db_user": e.db_user,
                    "detail": dict(e.detail),
                }
                for e in self.events
            ],
        }


@dataclass(frozen=True)
class HistoryReport:
    """`pgshift history`: the runs asked for, newest first."""

    runs: tuple[RunRecord, ...]
    limit: int
    run: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"runs": [r.to_json() for r in self.runs]}


def checked_run_id(run: str | None) -> str:
    """A ``--run`` value (a run id or its first characters) as read_log matches it, lower case;
    anything but hexadecimal digits and dashes is refused (exit 2): no run id has them."""
    if run is None:
        return ""
    text = run.strip().lower()
    if not text or any(ch not in "0123456789abcdef-" for ch in text):
        raise UsageError(
            f"--run {run!r}: a run id is hexadecimal digits and dashes",
            hint="`pgshift history` lists the run ids",
        )
    return text


def read_runs(
    target: Target, *, limit: int = DEFAULT_LIMIT, run: str | None = None
) -> HistoryReport:
    """The ``limit`` newest runs recorded on ``target`` (or those whose id starts with ``run``).

    Never takes the runner lock and never writes; a database pgshift never ran on has no runs.
    A ``run`` that matches nothing is refused (UsageError, exit 2): a typo must not read as an
    empty history.
    """
    if limit < 1:
        raise UsageError(f"--limit {limit}: expected 1 or more")
    prefix = checked_run_id(run)
    with target.read_only_session() as session:
        read = read_log(session, target.schema, limit=limit, run=prefix)
    runs = group_runs(read)
    if prefix and not runs:
        raise UsageError(
            f"no run recorded in this database has an id starting with {run!r}",
            hint="`pgshift history` lists the run ids",
        )
    return HistoryReport(runs, limit, prefix or None)


def group_runs(read: LogRead) -> tuple[RunRecord, ...]:
    """The events grouped into runs (by run id; an event of no run is a run of its own),
    newest run first. Pure."""
    groups: dict[str, list[LogEntry]] = {}
    for entry in read.events:
        key = entry.run_id if entry.run_id is not None else f"event {entry.id}"
        groups.setdefault(key, []).append(entry)
    records = [_record(events, read.who) for events in groups.values()]
    return tuple(sorted(records, key=lambda r: r.events[-1].id, reverse=True))


def _record(events: Sequence[LogEntry], who: Mapping[str, tuple[str, str | None]]) -> RunRecord:
    by_event: dict[str, LogEntry] = {}
    for e in events:
        by_event.setdefault(e.event, e)
    started = by_event.get("run_started")
    user: str | None = None
    host: str | None = None
    for e in events:  # a runner's run_started, or a manual mark, names them
        if "user" in e.detail or "host" in e.detail:
            user, host = e.detail.get("user"), e.detail.get("host")
            break
    run_id = events[0].run_id
    if user is None and run_id is not None and run_id in who:
        user, host = who[run_id]
    return RunRecord(
        run_id=run_id,
        kind=_kind(events, started),
        outcome=_outcome(by_event),
        started_at=events[0].at,
        ended_at=events[-1].at,
        user=user,
        host=host,
        db_user=events[0].db_user,
        duration_ms=_duration(by_event),
        applied=_versions(events, "migration_applied", "baseline", "import"),
        reverted=_versions(events, "migration_reverted"),
        failed=_versions(events, "migration_failed", "revert_failed"),
        error=_error(by_event),
        events=tuple(events),
        contracted=_versions(events, "migration_contracted"),
    )


def _kind(events: Sequence[LogEntry], started: LogEntry | None) -> str:
    if started is not None:
        actions = {str(s[1]) for s in started.detail.get("steps", ()) if len(s) > 1}
        if actions == {"contract"}:
            return "contract"
        return "rollback" if actions == {"revert"} else "up"
    names = [e.event for e in events]
    for event, kind in _KIND_OF_EVENT.items():
        if event in names:
            return kind
    return names[0]


def _outcome(by_event: Mapping[str, LogEntry]) -> str:
    if "interrupted" in by_event:
        return "interrupted"
    if "run_failed" in by_event:
        return "failed"
    if "run_finished" in by_event:
        return "finished"
    if "run_started" in by_event:
        return "unfinished"
    return "recorded"


def _duration(by_event: Mapping[str, LogEntry]) -> int | None:
    finished = by_event.get("run_finished")
    if finished is not None and isinstance(finished.detail.get("duration_ms"), int):
        return int(finished.detail["duration_ms"])
    started = by_event.get("run_started")
    ended = by_event.get("run_failed") or by_event.get("interrupted")
    if started is not None and ended is not None:
        return int((ended.at - started.at).total_seconds() * 1000)
    return None


def _versions(events: Sequence[LogEntry], *names: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(e.version for e in events if e.event in names and e.version))


def _error(by_event: Mapping[str, LogEntry]) -> str | None:
    failed = by_event.get("run_failed")
    if failed is not None and failed.detail.get("error"):
        return str(failed.detail["error"])
    for name in ("migration_failed", "revert_failed"):
        entry = by_event.get(name)
        if entry is not None and entry.detail.get("message"):
            return str(entry.detail["message"])
    return None
