"""Reading the run log (`pgshift history`): the newest runs' events, in one read-only statement.

Why its own module: the store reads what a plan needs (applied rows, progress, failures); this
reads what a person asks afterwards (who did what, when, from where), from the ``log`` table
every run writes, on the same kind of read-only text session `status` uses (libpq directly
where it loads), so it never takes the runner lock and never writes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pgshift.db.readonly import TextSession, text_session, timestamp

#: A timestamptz as UTC text that datetime.fromisoformat reads, whatever the DateStyle.
_UTC = "to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US')"


#: The key that groups the log into runs: its run id, or (an event of no run, such as a manual
#: backup) the event alone.
def _run_key(alias: str) -> str:
    return f"coalesce({alias}.run_id::text, 'event ' || {alias}.id::text)"


#: The newest runs (by their newest event), then all their events and who applied their
#: migrations (applied_by and host, for runs that logged no run_started: baseline, import), as
#: one JSON document. ``{s}`` is the quoted history schema.
_READ = (
    "WITH runs AS (SELECT " + _run_key("g") + " AS key, max(g.id) AS last FROM {s}.log g"
    " WHERE %s = '' OR g.run_id::text LIKE %s || '%%'"
    " GROUP BY 1 ORDER BY last DESC LIMIT %s::int)"
    " SELECT json_build_object("
    "'events', (SELECT coalesce(json_agg(json_build_array(l.id, "
    + _UTC.format(column="l.at")
    + ", l.run_id, l.event, l.version, l.pid, l.db_user, l.detail) ORDER BY l.id), '[]')"
    " FROM {s}.log l JOIN runs r ON " + _run_key("l") + " = r.key),"
    "'who', (SELECT coalesce(json_object_agg(w.run_id, json_build_array(w.applied_by, w.host)),"
    " '{}') FROM (SELECT DISTINCT ON (a.run_id) a.run_id::text AS run_id, a.applied_by, a.host"
    " FROM {s}.applied a JOIN runs r ON a.run_id::text = r.key ORDER BY a.run_id) w))::text"
)


@dataclass(frozen=True)
class LogEntry:
    """One row of pgshift's ``log`` table: an event of a run, as the database recorded it.

    ``pid`` and ``db_user`` are the server session and role that wrote it; ``detail`` is the
    event's own record (the error and statement of a failure, a run's steps, a duration).
    """

    id: int
    at: datetime
    run_id: str | None
    event: str
    version: str | None
    pid: int
    db_user: str
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LogRead:
    """What read_log returns: the events of the runs asked for, oldest first, and per run id
    the (applied_by, host) of a migration it applied that is still applied."""

    events: tuple[LogEntry, ...] = ()
    who: Mapping[str, tuple[str, str | None]] = field(default_factory=dict)


def _log_exists(session: TextSession, schema: str) -> bool:
    """Whether the history schema has its log table; from the catalog, so a schema the role
    may not use reads as absent rather than raising (the read-only commands' rule)."""
    rows = session.rows(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n"
        " ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = 'log'"
        " AND c.relkind IN ('r', 'p'))::text",
        (schema,),
    )
    return bool(rows) and rows[0][0] == "true"


def read_log(session: Any, schema: str, *, limit: int, run: str = "") -> LogRead:
    """The events of the ``limit`` newest runs (or of the runs whose id starts with ``run``).

    ``session`` is a TextSession or a psycopg connection. A database pgshift never ran on (no
    history schema yet) has no events. ``run`` must be hexadecimal digits and dashes (the
    caller checks it): it is matched as a LIKE prefix.
    """
    text = text_session(session)
    if not _log_exists(text, schema):
        return LogRead()
    query = _READ.replace("{s}", text.identifier(schema).replace("%", "%%"))
    rows = text.rows(query, (run, run, str(limit)))
    document = json.loads((rows[0][0] if rows else None) or "{}")
    zone = text.timezone
    events = tuple(
        LogEntry(
            id=int(r[0]),
            at=timestamp(r[1], zone),
            run_id=None if r[2] is None else str(r[2]),
            event=str(r[3]),
            version=r[4],
            pid=int(r[5]),
            db_user=str(r[6]),
            detail=r[7] if isinstance(r[7], dict) else {},
        )
        for r in document.get("events", ())
    )
    who = {str(k): (str(v[0]), v[1]) for k, v in (document.get("who") or {}).items()}
    return LogRead(events, who)
