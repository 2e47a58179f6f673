"""What a slow statement of a benchmark's probe waited on: server wait events sampled every few ms.

A probe's latency alone cannot say why one statement took 1.5 s: a lock queue, a WAL flush
behind a checkpoint's fsyncs, a new WAL segment being zero-filled, autovacuum, or the client
not being scheduled at all. WaitSampler reads pg_stat_activity every ``every_s`` on its own
connection (every backend that is not idle: the probe, the backfill, the checkpointer, the
WAL writer, autovacuum workers) and, for a statement that took long, ``explain`` lists what
the probe's backend and the others were doing meanwhile. ``server_log_lines`` picks the
server log's checkpoint and autovacuum lines of a time window (``log_checkpoints`` and
``log_autovacuum_min_duration = 0``, which ``enable_logging`` sets).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psycopg

#: One row per busy backend; now() is the same for all rows of one sample. Background
#: processes idling in their main loop (wait_event_type Activity) are left out.
_SAMPLE_SQL = (
    "SELECT extract(epoch FROM now())::float8, pid, backend_type,"
    " coalesce(state, ''), coalesce(wait_event_type, ''), coalesce(wait_event, ''),"
    " left(regexp_replace(coalesce(query, ''), '\\s+', ' ', 'g'), 40),"
    " coalesce(extract(epoch FROM now() - xact_start)::float8, 0)"
    " FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
    " AND state IS DISTINCT FROM 'idle' AND wait_event_type IS DISTINCT FROM 'Activity'"
)

#: pg_stat_bgwriter (15) / pg_stat_checkpointer (17+): checkpoints so far, timed and requested.
_CHECKPOINTS_SQL = {
    True: "SELECT num_timed, num_requested FROM pg_stat_checkpointer",
    False: "SELECT checkpoints_timed, checkpoints_req FROM pg_stat_bgwriter",
}


@dataclass
class Sample:
    at: float  # epoch seconds, server clock (same machine as the client)
    pid: int
    backend: str
    state: str
    wait: str  # "Type:Event" or "" (on CPU)
    query: str
    xact_s: float  # age of its transaction


@dataclass(eq=False)  # a thread: hashed by identity
class WaitSampler(threading.Thread):
    """Samples every non-idle backend's wait event until stopped."""

    url: str
    every_s: float = 0.003
    began: float = 0.0  # epoch seconds when sampling started
    checkpoints_before: tuple[int, int] = (0, 0)
    wal_before: tuple[int, int] = (0, 0)  # wal_files(): segments in pg_wal, LSN
    samples: list[Sample] = field(default_factory=list)
    halt: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        super().__init__(daemon=True)

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("SET application_name = 'bench wait sampler'")
            while not self.halt.is_set():
                for at, pid, backend, state, wtype, event, query, xact in conn.execute(_SAMPLE_SQL):
                    wait = f"{wtype}:{event}" if wtype else ""
                    self.samples.append(Sample(at, pid, backend, state, wait, query, xact))
                time.sleep(self.every_s)

    def stop(self) -> list[Sample]:
        self.halt.set()
        self.join()
        return self.samples

    def explain(self, began: float, ended: float, probe_pid: int) -> list[str]:
        """What the probe's backend and the others were seen doing in [began, ended]."""
        window = [s for s in self.samples if began <= s.at <= ended]
        ticks = sorted({s.at for s in window})
        mine = Counter(s.wait or f"CPU/{s.state}" for s in window if s.pid == probe_pid)
        seen = {s.at for s in window if s.pid == probe_pid}
        others: Counter[str] = Counter()
        for s in window:
            if s.pid != probe_pid and (s.wait or s.state == "active"):
                who = s.backend if s.backend != "client backend" else s.query[:24]
                others[f"{who} {s.wait or 'CPU'}"] += 1
        lines = [
            f"    {len(ticks)} samples; the probe's backend busy in {len(seen)}"
            f" (in the others it had nothing to run: the client had not sent)",
            "    probe: " + ", ".join(f"{w} x{n}" for w, n in mine.most_common(6)),
            "    others: " + ", ".join(f"{w} x{n}" for w, n in others.most_common(8)),
        ]
        return lines

    def longest_transactions(self, top: int = 3) -> list[str]:
        """The oldest transaction age seen per client backend: a long batch shows here."""
        oldest: dict[int, Sample] = {}
        for s in self.samples:
            if s.backend == "client backend" and s.xact_s > oldest.get(s.pid, s).xact_s - 1e-9:
                oldest[s.pid] = s
        ranked = sorted(oldest.values(), key=lambda s: -s.xact_s)[:top]
        return [f"{s.xact_s * 1000:.0f} ms ({s.query[:28]})" for s in ranked]


def enable_logging(url: str) -> None:
    """log_checkpoints and log_autovacuum_min_duration = 0 on a benchmark's own server."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET log_checkpoints = on")
        conn.execute("ALTER SYSTEM SET log_autovacuum_min_duration = 0")
        conn.execute("SELECT pg_reload_conf()")


def checkpoints(url: str) -> tuple[int, int]:
    """(timed, requested) checkpoints so far."""
    with psycopg.connect(url, autocommit=True) as conn:
        newer = conn.info.server_version >= 170000
        row = conn.execute(_CHECKPOINTS_SQL[newer]).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])


def wal_files(url: str) -> tuple[int, int]:
    """(segments in pg_wal, current WAL position in bytes): the run's WAL volume, and how many
    segments it made the server create (a segment made is one zero-filled)."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{24}$'),"
            " pg_current_wal_lsn() - '0/0'"
        ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])


_WORTH = ("checkpoint", "automatic vacuum", "automatic analyze")


def server_log_lines(log: Path | None, began: float, ended: float) -> list[str]:
    """The log's checkpoint and autovacuum lines stamped within [began, ended] (epoch s)."""
    if log is None or not log.exists():
        return []
    picked = []
    for line in log.read_text(errors="replace").splitlines():
        if not any(word in line for word in _WORTH):
            continue
        stamp = " ".join(line.split()[:3])  # e.g. 2026-12-06 05:30:01.123 UTC
        try:
            at = datetime.strptime(stamp.replace(" UTC", " +0000"), "%Y-%m-%d %H:%M:%S.%f %z")
        except ValueError:
            continue
        if began <= at.timestamp() <= ended:
            picked.append(f"    {line[:220]}")
    return picked
