"""The control database of a fleet: its targets query and the run table workers claim from.

One row per (run, target). A worker claims a row with ``FOR UPDATE SKIP LOCKED`` (two workers
never claim one row, nor wait for each other) and holds it under a lease that its heartbeat
extends; a row whose lease ran out is claimable again, which is how a dead worker's targets are
taken over. The lease only spreads the work: one runner per target is still guaranteed by the
target's own advisory lock, so a slow worker taken over by mistake waits, plans again from the
target's history and finds the work done.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pgshift.db.connect import open_connection, redact
from pgshift.errors import DatabaseUnavailable

if TYPE_CHECKING:
    import psycopg

    from pgshift.fleet_targets import TargetSpec

#: The control database's schema for pgshift's fleet runs.
CONTROL_SCHEMA = "pgshift_fleet"
#: Serializes the creation of the run table among workers starting together.
_CREATE_LOCK_KEY = 0x7067_7368_6966_7401

_CREATE = """
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.target_runs (
    run         text NOT NULL,
    target      text NOT NULL,
    wave        integer NOT NULL DEFAULT 1,
    state       text NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'running', 'done', 'failed')),
    owner       text,
    lease_until timestamptz,
    attempts    integer NOT NULL DEFAULT 0,
    status      text,
    exit_code   integer,
    applied     integer NOT NULL DEFAULT 0,
    message     text,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run, target)
)
"""

_CLAIM = """
UPDATE {s}.target_runs r
SET state = 'running', owner = %(worker)s, attempts = r.attempts + 1, updated_at = now(),
    lease_until = now() + %(lease)s * interval '1 second'
WHERE (r.run, r.target) = (
    SELECT c.run, c.target FROM {s}.target_runs c
    WHERE c.run = %(run)s
      AND (c.state = 'pending' OR (c.state = 'running' AND c.lease_until < now()))
      AND (c.wave = 0 OR NOT EXISTS (
            SELECT 1 FROM {s}.target_runs w
            WHERE w.run = %(run)s AND w.wave = 0 AND w.state <> 'done'))
      AND (%(max)s::integer IS NULL OR (
            SELECT count(*) FROM {s}.target_runs f
            WHERE f.run = %(run)s AND f.state = 'failed') < %(max)s::integer)
    ORDER BY c.wave, c.target
    LIMIT 1
    FOR UPDATE SKIP LOCKED)
RETURNING r.target
"""


@dataclass(frozen=True)
class RunRow:
    """One target of a run as the control database has it."""

    target: str
    state: str  # pending, running, done, failed
    status: str | None  # what the target's last outcome said (applied, up-to-date, failed)
    exit_code: int
    applied: int
    message: str | None
    owner: str | None
    attempts: int


def query_targets(url: str, query: str) -> list[tuple[Any, ...]]:
    """The rows of ``--targets-query`` on the control database (read-only transaction)."""
    import psycopg

    with open_connection(url, purpose="fleet targets", autocommit=False) as conn:
        try:
            conn.execute("SET TRANSACTION READ ONLY")
            return list(conn.execute(query.encode()).fetchall())
        except psycopg.Error as exc:
            raise DatabaseUnavailable(
                "--targets-query failed: " + redact(str(exc).strip(), url)
            ) from None


class ControlBoard:
    """The RunBoard (ops/fleet.py) of one run, over one session shared by a worker's threads."""

    def __init__(self, url: str, run: str) -> None:
        self._url = url
        self.run = run
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self._lock = threading.Lock()

    def _q(self, template: str) -> Any:
        from psycopg import sql

        return sql.SQL(template).format(s=sql.Identifier(CONTROL_SCHEMA))

    def _execute(self, template: str, params: dict[str, Any] | None = None) -> list[Any]:
        """One statement under the board's lock; a lost control database is exit 3."""
        import psycopg

        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = open_connection(self._url, purpose="fleet control")
                cur = self._conn.execute(self._q(template), params)
                return list(cur.fetchall()) if cur.description else []
            except psycopg.Error as exc:
                raise DatabaseUnavailable(
                    "the fleet's control database failed: " + redact(str(exc).strip(), self._url)
                ) from None

    def create(self) -> None:
        with self._lock:
            if self._conn is None or self._conn.closed:
                self._conn = open_connection(self._url, purpose="fleet control")
            conn = self._conn
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_CREATE_LOCK_KEY,))
                conn.execute(self._q(_CREATE))

    def register(self, specs: Sequence[tuple[TargetSpec, int]]) -> None:
        self.create()
        self._execute(
            "INSERT INTO {s}.target_runs (run, target, wave)"
            " SELECT %(run)s, t, w FROM unnest(%(targets)s::text[], %(waves)s::int[]) AS u(t, w)"
            " ON CONFLICT (run, target) DO NOTHING",
            {
                "run": self.run,
                "targets": [s.name for s, _ in specs],
                "waves": [wave for _, wave in specs],
            },
        )

    def retry_failed(self) -> int:
        rows = self._execute(
            "UPDATE {s}.target_runs SET state = 'pending', updated_at = now()"
            " WHERE run = %(run)s AND state = 'failed' RETURNING target",
            {"run": self.run},
        )
        return len(rows)

    def claim(self, worker: str, lease_s: float, max_failures: int | None) -> str | None:
        rows = self._execute(
            _CLAIM, {"run": self.run, "worker": worker, "lease": lease_s, "max": max_failures}
        )
        return str(rows[0][0]) if rows else None

    def heartbeat(self, worker: str, lease_s: float) -> None:
        self._execute(
            "UPDATE {s}.target_runs SET lease_until = now() + %(lease)s * interval '1 second'"
            " WHERE run = %(run)s AND owner = %(worker)s AND state = 'running'",
            {"run": self.run, "worker": worker, "lease": lease_s},
        )

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
    ) -> None:
        """Record a target's outcome, unless another worker took it over meanwhile."""
        self._execute(
            "UPDATE {s}.target_runs SET state = %(state)s, status = %(status)s,"
            " exit_code = %(code)s, applied = %(applied)s, message = %(message)s,"
            " owner = NULL, lease_until = NULL, updated_at = now()"
            " WHERE run = %(run)s AND target = %(target)s AND owner = %(worker)s",
            {
                "run": self.run,
                "target": target,
                "worker": worker,
                "state": state,
                "status": status,
                "code": exit_code,
                "applied": applied,
                "message": message,
            },
        )

    def busy(self) -> bool:
        rows = self._execute(
            "SELECT EXISTS (SELECT 1 FROM {s}.target_runs WHERE run = %(run)s"
            " AND state = 'running' AND lease_until >= now())",
            {"run": self.run},
        )
        return bool(rows and rows[0][0])

    def rows(self) -> list[RunRow]:
        """Every target of the run, by name; none when the run table does not exist yet."""
        exists = self._execute(
            "SELECT to_regclass(format('%%I.target_runs', %(schema)s::text)) IS NOT NULL",
            {"schema": CONTROL_SCHEMA},
        )
        if not exists or not exists[0][0]:
            return []
        rows = self._execute(
            "SELECT target, state, status, coalesce(exit_code, 0), applied, message, owner,"
            " attempts FROM {s}.target_runs WHERE run = %(run)s ORDER BY target",
            {"run": self.run},
        )
        return [
            RunRow(str(r[0]), str(r[1]), r[2], int(r[3]), int(r[4]), r[5], r[6], int(r[7]))
            for r in rows
        ]

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
