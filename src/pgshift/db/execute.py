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

import contextlib
import os
import signal
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pgshift import config

if TYPE_CHECKING:
    import psycopg

    from pgshift.db.prepared import PreparedWrites
    from pgshift.db.store import PostgresHistoryStore
    from pgshift.execution import HistoryWrite, IndexFacts, ServerError
    from pgshift.model import Statement

#: The separator between the parts of one message.
SEPARATOR = b";\n"


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
    if config.failpoint() == name:
        os.kill(os.getpid(), signal.SIGKILL)


class PostgresExecutor:
    """The Executor (pgshift.execution) over the runner's psycopg session.

    History writes become SQL of ``store`` (PostgresHistoryStore), bound client-side, so that a
    transactional chunk, its timeouts and its history write travel as one message.
    """

    def __init__(self, conn: psycopg.Connection[Any], store: PostgresHistoryStore) -> None:
        self.conn = conn
        self.store = store
        #: True while the server runs a migration's statements (with, in a transaction, their
        #: history write): the only time a stop request may cancel (see cancel).
        self._cancellable = False
        #: The history writes PREPAREd on this session (db/prepared.py), made on first use.
        self._prepared: PreparedWrites | None = None
        #: Set once a write found its statement gone unseen: the session keeps sending text,
        #: so that no other migration of the run is sent twice for it.
        self._text_only = False

    def cancel(self) -> bool:
        """Ask the server to cancel what this session runs, when that is a migration statement.

        Called from a signal handler on the main thread while it waits for the server. A
        transactional chunk rolls back whole; a statement run alone stops before its progress
        row. The progress write after a statement run alone is never cancelled: losing it would
        make a re-run execute that statement a second time.
        """
        import psycopg

        if not self._cancellable or self.conn.closed:
            return False
        with contextlib.suppress(psycopg.Error):
            self.conn.cancel_safe(timeout=5.0)
        return True

    def _write_sql(self, write: HistoryWrite, prepared: PreparedWrites | None = None) -> bytes:
        from pgshift.execution import RecordApplied, RecordContracted, RecordReverted

        conn, store = self.conn, self.store
        if isinstance(write, RecordApplied):
            return store.applied_sql(conn, write.row, expect=write.expect, prepared=prepared)
        if isinstance(write, RecordReverted):
            return store.reverted_sql(
                conn,
                write.version,
                write.run_id,
                write.detail,
                duration_ms=write.duration_ms,
                expect=write.expect,
                prepared=prepared,
            )
        if isinstance(write, RecordContracted):
            return store.contracted_sql(
                conn, write.version, write.run_id, write.duration_ms, expect=write.expect,
                prepared=prepared,
            )  # fmt: skip
        return store.progress_sql(conn, write.progress, expect=write.expect, prepared=prepared)

    def _prepared_writes(self, statements: Sequence[Statement]) -> PreparedWrites | None:
        """The session's prepared writes, or None (the write as text) when ``statements``
        drop prepared statements; these are then prepared again after them."""
        from pgshift.db.prepared import DROPS_PREPARED, PreparedWrites

        if self._text_only:
            return None
        if self._prepared is None:
            self._prepared = PreparedWrites(self.conn)
        if any(s.kind in DROPS_PREPARED for s in statements):
            self._prepared.forget()
            return None
        return self._prepared

    def run_transaction(
        self,
        statements: Sequence[Statement],
        write: HistoryWrite,
        *,
        version: str,
        lock_timeout_ms: int,
        statement_timeout_ms: int,
    ) -> None:
        """BEGIN, the timeouts, the statements, the write and COMMIT as ONE simple-query message.

        One round trip per migration instead of one per statement is what keeps pgshift near
        psql's speed. The server stops at the first error and the transaction rolls back whole;
        run_parts tells which part failed, so nothing is run again to find it.
        """
        import psycopg

        from pgshift.db.activity import marker
        from pgshift.execution import RecordReverted, StatementFailed

        timeouts = _timeouts(lock_timeout_ms, statement_timeout_ms, local=True)
        # The marker names the migration in pg_stat_activity while it runs (db/activity.py).
        action = "revert" if isinstance(write, RecordReverted) else "apply"
        begin = marker(action, self.store.schema, version) + b"BEGIN"
        body = [begin, *timeouts, *(s.sql.encode() for s in statements)]
        prepared = self._prepared_writes(statements)
        while True:
            parts = [*body, self._write_sql(write, prepared), b"COMMIT"]
            try:
                self._cancellable = True
                run_parts(self.conn, parts)
                break
            except PartFailed as failed:
                self._rollback_quietly()
                if prepared is not None and _lost_prepared(failed, write_index=len(body)):
                    # Rolled back whole: run it once more, the write as text (db/prepared.py),
                    # and keep to text: what dropped it may do so again (or a pooler).
                    prepared.forget()
                    prepared, self._text_only = None, True
                    continue
                index = failed.index - 1 - len(timeouts)  # BEGIN and the timeouts come first
                stmt = statements[index] if 0 <= index < len(statements) else None
                raise StatementFailed(server_error(failed.error, failed.offset), stmt) from None
            except psycopg.Error as exc:  # the connection went away: the history will tell
                raise StatementFailed(server_error(exc, None), None) from None
            finally:
                self._cancellable = False
        end = statements[-1].index + 1 if statements else 0
        failpoint(f"committed:{version}:{end}")

    def run_alone(
        self,
        statement: Statement,
        write: HistoryWrite,
        *,
        version: str,
        skip: bool,
        lock_timeout_ms: int,
        statement_timeout_ms: int,
    ) -> None:
        """The statement in autocommit (PostgreSQL refuses it in a transaction), then the write.

        The write was composed before the statement ran, and its transaction measures only
        itself: the statement's own wall time is added to it, so that an applied or reverted
        row records the migration's whole wall time (a concurrent index build of seconds, not
        the few milliseconds of the history write).
        """
        import time

        import psycopg

        from pgshift.execution import (
            RecordApplied,
            RecordContracted,
            RecordReverted,
            StatementFailed,
            later_by,
        )

        conn = self.conn
        try:
            conn.execute(b";".join(_timeouts(lock_timeout_ms, statement_timeout_ms, local=False)))
            began = time.monotonic()
            if not skip:
                self._cancellable = True
                try:
                    conn.execute(statement.sql.encode())
                finally:
                    self._cancellable = False
            failpoint(f"ran:{version}:{statement.index}")
            self._prepared_writes([statement])  # a DISCARD ALL run alone: prepare again after
            record = self._write_sql(later_by(write, int((time.monotonic() - began) * 1000)))
            if isinstance(write, RecordApplied | RecordReverted | RecordContracted):
                with conn.transaction():
                    conn.execute(record)
            else:
                conn.execute(record)
            failpoint(f"committed:{version}:{statement.index + 1}")
        except psycopg.Error as exc:
            raise StatementFailed(server_error(exc, _own_offset(exc)), statement) from None
        finally:
            if not conn.closed:
                with contextlib.suppress(psycopg.Error):
                    conn.execute("RESET lock_timeout; RESET statement_timeout")

    def find_index(self, schema: str | None, name: str) -> IndexFacts | None:
        from pgshift.db.catalog import find_index

        return find_index(self.conn, schema, name)

    def drop_index(self, index: IndexFacts) -> None:
        from psycopg import sql

        self.conn.execute(
            sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}.{}").format(
                sql.Identifier(index.schema), sql.Identifier(index.name)
            )
        )

    def backend_pid(self) -> int:
        """The server's pid of the session (asked, not the handshake's: poolers answer those)."""
        row = self.conn.execute("SELECT pg_backend_pid()").fetchone()
        return int(str(row[0])) if row else 0

    def _rollback_quietly(self) -> None:
        """End the failed transaction a multi-statement message left open."""
        import psycopg

        if self.conn.closed:
            return
        with contextlib.suppress(psycopg.Error):
            self.conn.execute("ROLLBACK")


def _lost_prepared(failed: PartFailed, *, write_index: int) -> bool:
    """The write's EXECUTE found no prepared statement: a statement of the migration
    deallocated it, or the session was reset."""
    from pgshift.db.prepared import NOT_PREPARED

    return failed.index == write_index and failed.error.sqlstate == NOT_PREPARED


def server_error(error: Exception, offset: int | None) -> ServerError:
    """psycopg's exception as the plain value the runner reasons about."""
    from pgshift.execution import ServerError

    diag = getattr(error, "diag", None)
    text = diag.message_primary if diag is not None and diag.message_primary else str(error)
    primary = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    hint = diag.message_hint if diag is not None else None
    return ServerError(getattr(error, "sqlstate", None), primary, hint, offset)


def _timeouts(lock_ms: int, statement_ms: int, *, local: bool) -> list[bytes]:
    """The two SETs that bound the migration's lock waits and run time, one part each.

    `SET LOCAL` rather than `SELECT set_config(...)`: a utility statement the server neither
    plans nor looks up in the search path (10-15 us less per migration: bench/RESULTS.md).
    """
    scope = b"SET LOCAL " if local else b"SET "
    return [
        scope + b"lock_timeout = '%dms'" % int(lock_ms),
        scope + b"statement_timeout = '%dms'" % int(statement_ms),
    ]


def _own_offset(error: Exception) -> int | None:
    """The server's error position in a statement that was sent on its own."""
    diag = getattr(error, "diag", None)
    position = diag.statement_position if diag is not None else None
    try:
        return int(position) - 1 if position else None
    except ValueError:
        return None
