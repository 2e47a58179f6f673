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
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeVar, cast

from pgshift import config

if TYPE_CHECKING:
    import psycopg
    from psycopg import pq
    from psycopg.abc import PQGen

    from pgshift.db.prepared import PreparedWrites
    from pgshift.db.store import PostgresHistoryStore
    from pgshift.execution import HistoryWrite, IndexFacts, ServerError, Transaction
    from pgshift.model import Statement

RV = TypeVar("RV")

#: The separator between the parts of one message.
SEPARATOR = b";\n"


class Gate(Protocol):
    """Holds the gate key (db/lock.py) on a session other than the runner's."""

    schema: str

    def close_gate(self) -> bool: ...

    def open_gate(self) -> None: ...


class PartFailed(Exception):
    """Part ``index`` of a message failed with ``error``; the parts before it succeeded.

    ``offset`` is the 0-based character offset of the error inside that part when the server
    gave a position, else None.
    """

    def __init__(
        self,
        index: int,
        error: psycopg.Error,
        offset: int | None,
        results: Sequence[pq.abc.PGresult] = (),
    ) -> None:
        super().__init__(str(error))
        self.index = index
        self.error = error
        self.offset = offset
        self.results = results  # the answers of the parts before it


def run_parts(
    conn: psycopg.Connection[Any],
    parts: Sequence[bytes],
    watch: Callable[[], None] | None = None,
) -> list[pq.abc.PGresult]:
    """Run ``parts`` (one SQL statement each) as one simple-query message; their results, in
    order, or PartFailed. ``watch`` is called while the server works, every WATCH_S at least.

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
        answers = generators.execute(conn.pgconn)
        if watch is None:
            results: list[pq.abc.PGresult] = conn.wait(answers)
        else:
            results = conn.wait(_watched(answers, watch), interval=WATCH_S)
    for index, result in enumerate(results):
        if result.status != pq.ExecStatus.FATAL_ERROR:
            continue
        error = psycopg.errors.error_from_result(result, encoding=conn.info.encoding)
        raise PartFailed(index, error, _offset_in_part(error, parts, index), results[:index])
    return results


#: How often a batch's wait looks at whether the run was asked to stop (PostgresExecutor).
WATCH_S = 0.05


def _watched(answers: PQGen[RV], watch: Callable[[], None]) -> PQGen[RV]:
    """``answers`` (a psycopg generator), calling ``watch`` each time the wait wakes."""
    try:
        wait = next(answers)
        while True:
            ready = yield wait
            watch()
            wait = answers.send(ready)
    except StopIteration as done:
        return cast("RV", done.value)


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

    def __init__(
        self, conn: psycopg.Connection[Any], store: PostgresHistoryStore, gate: Gate | None = None
    ) -> None:
        self.conn = conn
        self.store = store
        #: Keeps a batch's later transactions from starting once the run is asked to stop
        #: (the runner lock's idle session: db/lock.py, gate_key); None: stop between batches.
        self.gate = gate
        #: True while the server runs a migration's statements (with, in a transaction, their
        #: history write): the only time a stop request may cancel (see cancel).
        self._cancellable = False
        #: The history writes PREPAREd on this session (db/prepared.py), made on first use.
        self._prepared: PreparedWrites | None = None
        #: Set once a write found its statement gone unseen: the session keeps sending text,
        #: so that no other migration of the run is sent twice for it.
        self._text_only = False
        self._gate_sql: bytes | None = None  # _gate_and_stamp's statement, composed once

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
        """One transaction: a batch of one (run_transactions)."""
        from pgshift.execution import BatchFailed, Transaction

        one = Transaction(statements, write, version, lock_timeout_ms, statement_timeout_ms)
        try:
            self.run_transactions([one])
        except BatchFailed as failed:
            raise failed.failure from None

    def run_transactions(
        self, batch: Sequence[Transaction], stopped: Callable[[], bool] = lambda: False
    ) -> list[int]:
        """Each transaction's BEGIN, timeouts, statements, write and COMMIT, the whole batch as
        ONE simple-query message; each one's duration (ms) as the server measured it.

        One round trip per migration instead of one per statement is what keeps pgshift near
        psql's speed; one per batch keeps the server from waiting on the client between two
        small migrations at all. The server stops at the first error: the transactions before
        it stay committed, the failing one rolls back whole, the ones after it never run, and
        run_parts tells which part failed, so nothing is run again to find it (BatchFailed).
        Once ``stopped`` says so, the gate closes and no later transaction starts.
        """
        durations: list[int] = []
        rest = list(batch)
        while True:
            parts, spans = self._message(rest)
            # Only a message with a later transaction has one to keep from starting.
            watch = _GateWatch(self.gate if len(spans) > 1 else None, stopped)
            try:
                results = self._run_batch_parts(rest, parts, spans, durations, watch)
            except _SendAgain as again:
                rest = rest[again.done :]
                continue
            finally:
                watch.reopen()
            return durations + _committed(rest, spans, results)

    def _run_batch_parts(
        self,
        batch: Sequence[Transaction],
        parts: Sequence[bytes],
        spans: Sequence[_Span],
        durations: list[int],
        watch: Callable[[], None],
    ) -> list[pq.abc.PGresult]:
        """run_parts for run_transactions: a refusal as BatchFailed (the durations of those
        committed before it added to ``durations``), or _SendAgain from the one whose prepared
        write was lost."""
        import psycopg

        from pgshift.db.prepared import NOT_PREPARED
        from pgshift.execution import STOPPED_BEFORE_START, BatchFailed, StatementFailed

        try:
            self._cancellable = True
            return run_parts(self.conn, parts, watch)
        except PartFailed as failed:
            self._rollback_quietly()
            done = sum(1 for span in spans if span.commit < failed.index)
            durations += _committed(batch[:done], spans, failed.results)
            span = spans[done]
            lost = failed.error.sqlstate == NOT_PREPARED
            if span.prepared and failed.index == span.write and lost:
                # Rolled back whole: run it (and the rest) once more, the write as text
                # (db/prepared.py), and keep to text: what dropped it may do so again (or a
                # pooler).
                self._forget_prepared(text_only=True)
                raise _SendAgain(done) from None
            error = server_error(failed.error, failed.offset)
            if failed.index == span.gate:
                error = STOPPED_BEFORE_START
            statements = batch[done].statements
            index = failed.index - span.first
            stmt = statements[index] if 0 <= index < len(statements) else None
            failure = StatementFailed(error, stmt)
            begun = failed.index >= span.first
            raise BatchFailed(len(durations), durations, failure, begun=begun) from None
        except psycopg.Error as exc:  # the connection went away: the history will tell
            failure = StatementFailed(server_error(exc, None), None)
            raise BatchFailed(len(durations), durations, failure) from None
        finally:
            self._cancellable = False

    def _message(self, batch: Sequence[Transaction]) -> tuple[list[bytes], list[_Span]]:
        """The parts of ``batch``'s one message, and where each transaction's lie in it.

        The first BEGIN carries the marker that names the batch in pg_stat_activity
        (db/activity.py). Every later transaction first passes the gate (when the executor has
        one) and stamps its own start (db/store.py, STAMP_START): the server gives all the
        transactions of one message the message's arrival as their start, and the history
        write measures from it.
        """
        from pgshift.db.activity import marker
        from pgshift.db.prepared import DROPS_PREPARED
        from pgshift.execution import RecordReverted

        parts: list[bytes] = []
        spans: list[_Span] = []
        dropped = False  # a transaction of the message drops prepared statements: text after it
        for number, job in enumerate(batch):
            gate = -1
            if number == 0:
                action = "revert" if isinstance(job.write, RecordReverted) else "apply"
                then = [later.version for later in batch[1:]]
                parts.append(marker(action, self.store.schema, job.version, then) + b"BEGIN")
            else:
                parts.append(b"BEGIN")
                gate = len(parts)
                parts.append(self._gate_and_stamp())
            parts += _timeouts(job.lock_timeout_ms, job.statement_timeout_ms, local=True)
            first = len(parts)
            parts += [s.sql.encode() for s in job.statements]
            prepared = None if dropped else self._prepared_writes(job.statements)
            dropped = dropped or any(s.kind in DROPS_PREPARED for s in job.statements)
            parts += [self._write_sql(job.write, prepared), b"COMMIT"]
            spans.append(_Span(first, len(parts) - 2, len(parts) - 1, prepared is not None, gate))
        return parts, spans

    def _gate_and_stamp(self) -> bytes:
        """A later transaction's first statement: the stamp of its start, refused (PGSMV, by
        pgshift's `expect`) while the gate key is held; checking takes the key and gives it
        back, so the gate can close while a transaction runs."""
        from pgshift.db.store import STAMP_START

        if self.gate is None:
            return STAMP_START
        if self._gate_sql is None:
            from psycopg import sql

            from pgshift.db.lock import gate_key

            key = gate_key(self.gate.schema)
            self._gate_sql = sql.SQL(
                "SELECT {}.expect(CASE WHEN pg_catalog.pg_try_advisory_lock_shared({})"
                " THEN pg_catalog.pg_advisory_unlock_shared({}) ELSE false END,"
                " 'the run was asked to stop'), "
            ).format(sql.Identifier(self.store.schema), key, key).as_bytes(
                self.conn
            ) + STAMP_START.removeprefix(b"SELECT ")
        return self._gate_sql

    def _forget_prepared(self, *, text_only: bool) -> None:
        if self._prepared is not None:
            self._prepared.forget()
        self._text_only = self._text_only or text_only

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


class _Span(NamedTuple):
    """Where one transaction of a batch lies in its message: the index of its first
    statement, of its history write and of its COMMIT; whether the write is an EXECUTE."""

    first: int
    write: int
    commit: int
    prepared: bool
    gate: int  # the part that passes the gate and stamps the start; -1 for the first


class _GateWatch:
    """Called while a batch's message runs: closes the gate once the run is asked to stop."""

    def __init__(self, gate: Gate | None, stopped: Callable[[], bool]) -> None:
        self.gate = gate
        self.stopped = stopped
        self.closed = False

    def __call__(self) -> None:
        if self.gate is not None and not self.closed and self.stopped():
            self.closed = self.gate.close_gate()

    def reopen(self) -> None:
        if self.gate is not None and self.closed:
            self.gate.open_gate()
            self.closed = False


class _SendAgain(Exception):
    """The batch is sent again from transaction ``done`` (those before it committed)."""

    def __init__(self, done: int) -> None:
        super().__init__(done)
        self.done = done


def _committed(
    done: Sequence[Transaction], spans: Sequence[_Span], results: Sequence[pq.abc.PGresult]
) -> list[int]:
    """The durations the writes of the committed transactions ``done`` answered (0 for a
    progress write, which records none); each passes its failpoint."""
    from pgshift.execution import RecordProgress

    durations = []
    for job, span in zip(done, spans, strict=False):
        value = (
            None if isinstance(job.write, RecordProgress) else results[span.write].get_value(0, 0)
        )
        durations.append(int(value) if value is not None else 0)
        end = job.statements[-1].index + 1 if job.statements else 0
        failpoint(f"committed:{job.version}:{end}")
    return durations


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
