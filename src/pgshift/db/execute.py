"""Sends a migration's statements to the server once, and tells exactly which one failed.

Why it is shaped this way: a migration's statements, the timeouts and the history write travel
as ONE simple-query message (one round trip per migration, which keeps pgshift near psql's
speed), and the server answers with one result per statement, in order, stopping at the first
error. Counting the results before the error names the failing statement, so nothing is ever
run a second time to find it: a backfill that fails after twenty minutes is not run for
twenty more, and a failure that would not recur (a deadlock) is not mistaken for success.
The server's error position is relative to the whole message; it is turned back into an
offset inside the failing part, so the file line can be exact.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

#: The separator between the parts of one message.
SEPARATOR = b";\n"

#: Environment variable naming a failpoint at which the process kills itself with SIGKILL.
#: The fault-injection tests use it to stop a run at an exact instant (after a statement's
#: result came back, before anything else is sent); it costs one dictionary lookup per step.
FAILPOINT_VARIABLE = "PGSHIFT_FAILPOINT"


class PartFailed(Exception):
    """Part ``index`` of a message failed with ``error``; the parts before it succeeded.

    ``offset`` is the 0-based character offset of the error inside that part when the server
    gave a position, else None.
    """

    def __init__(self, index: int, error: psycopg.Error, offset: int | None) -> None:
        super().__init__(str(error))
        self.index = index
        self.error = error
        self.offset = offset


def run_parts(conn: psycopg.Connection[Any], parts: Sequence[bytes]) -> None:
    """Run ``parts`` (one SQL statement each) as one simple-query message; raise PartFailed.

    Every part must be exactly one statement, so that result i answers part i. A lost
    connection raises psycopg's OperationalError as it is: which parts ran is then unknown to
    the client, and only the history in the database (written in the same transaction as the
    statements) can say.
    """
    import psycopg
    from psycopg import generators, pq

    message = SEPARATOR.join(parts)
    with conn.lock:
        conn.pgconn.send_query(message)
        results = conn.wait(generators.execute(conn.pgconn))
    for index, result in enumerate(results):
        if result.status != pq.ExecStatus.FATAL_ERROR:
            continue
        error = psycopg.errors.error_from_result(result, encoding=conn.info.encoding)
        raise PartFailed(index, error, _offset_in_part(error, parts, index))


def _offset_in_part(error: psycopg.Error, parts: Sequence[bytes], index: int) -> int | None:
    """The error's position, made relative to its part (positions count characters)."""
    position = error.diag.statement_position if error.diag else None
    if not position:
        return None
    try:
        absolute = int(position) - 1
    except ValueError:
        return None
    before = SEPARATOR.join(parts[:index]) + (SEPARATOR if index else b"")
    offset = absolute - len(before.decode("utf-8", errors="replace"))
    part_length = len(parts[index].decode("utf-8", errors="replace"))
    return offset if 0 <= offset <= part_length else None


def failpoint(name: str) -> None:
    """Die at once (SIGKILL, as `kill -9` would) when PGSHIFT_FAILPOINT names this instant."""
    if os.environ.get(FAILPOINT_VARIABLE) == name:
        os.kill(os.getpid(), signal.SIGKILL)
