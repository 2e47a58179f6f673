"""A backfill in the database: its key from the catalog, its progress row, its batches.

Why it is shaped this way (SPEC 14): each batch's data statement and the move of the progress
row's ``done_key`` commit in ONE transaction, and the move is a compare-and-set: the batch first
updates the row only where ``done_key`` is still the key the batch starts from (which also locks
the row), so a batch runs at most once whatever happened before (a killed client, an orphaned
session that still commits, a second runner), and a resumed backfill starts after the last
committed batch. Keys travel as text (``key::text``) and are compared by the server after it
casts them back to the key column's type, so any key type with a text form works.

The batch statement (rewrite/backfill.py) is prepared once per session and executed with the
batch's bounds as literals: one plan for the whole backfill, no text ever spliced.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pgshift.db.execute import failpoint, server_error
from pgshift.errors import DriftError, MigrationFailed
from pgshift.execution import ServerError

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql as pgsql

    from pgshift.rewrite.backfill import BatchStatements, Relation

Key = tuple[str, ...]

#: How a batch key is found: the table's primary key, or the columns of `@batch-key`.
PRIMARY_KEY, BATCH_KEY = "primary key", "@batch-key"

#: Names of the session's two prepared batch statements (see BackfillSession.prepare).
_FIRST, _FOLLOWING = "pgshift_backfill_first", "pgshift_backfill_following"


class BackfillMoved(Exception):
    """The progress row is not where this batch started from: another session moved it.

    The batch's transaction was rolled back whole; re-read the progress and go on from there.
    """


@dataclass(frozen=True)
class BatchDone:
    """A committed batch: the rows its statement changed, and the sessions that were waiting
    on its locks (pg_blocking_pids names this session) just before it committed."""

    rows: int
    waiters: int


#: Sessions waiting for a lock this session holds, asked inside the batch's transaction.
#: pg_blocking_pids takes the lock manager's locks briefly: asked only of sessions that wait
#: on a lock at all, once per batch.
_WAITERS_SQL = (
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
    " AND pg_backend_pid() = ANY (pg_blocking_pids(pid))"
)


class BatchFailed(Exception):
    """The server refused a batch (its transaction is rolled back): ``error`` says why."""

    def __init__(self, error: ServerError) -> None:
        super().__init__(error.message)
        self.error = error


@dataclass(frozen=True)
class KeyFacts:
    """The key a backfill batches along, as the catalog states it.

    ``table`` is the key table as the server prints its name (regclass), ``columns`` the key's
    columns in index order, ``source`` PRIMARY_KEY or BATCH_KEY, ``estimate`` the planner's
    row estimate (pg_class.reltuples, summed over partitions; None when never analysed).
    """

    table: str
    columns: Key
    source: str
    estimate: int | None


@dataclass(frozen=True)
class BackfillState:
    """One backfill's progress row: how far it got along its fixed key range."""

    version: str
    action: str
    checksum: str
    key_table: str
    key_columns: Key
    upper_key: Key | None  # the last key when it started; None: the table was empty
    done_key: Key | None  # the upper key of the last committed batch; None: none yet
    rows_done: int  # rows the statement changed
    keys_done: int  # keys the committed batches covered (what the estimate counts)
    rows_estimate: int | None
    batches: int
    finished: bool


_KEY_SQL = """
WITH t AS (SELECT to_regclass(%(name)s) AS oid)
SELECT t.oid::regclass::text,
  (SELECT array_agg(a.attname::text ORDER BY k.n)
     FROM pg_index i, unnest(i.indkey) WITH ORDINALITY AS k(attnum, n), pg_attribute a
    WHERE i.indrelid = t.oid AND i.indisprimary
      AND a.attrelid = t.oid AND a.attnum = k.attnum),
  CASE WHEN c.relkind = 'p'
       THEN (SELECT sum(greatest(p.reltuples, 0))::bigint
               FROM pg_partition_tree(t.oid) pt JOIN pg_class p ON p.oid = pt.relid
              WHERE pt.isleaf)
       WHEN c.reltuples < 0 THEN NULL
       ELSE c.reltuples::bigint END
FROM t LEFT JOIN pg_class c ON c.oid = t.oid
"""

#: For `@batch-key`: each named column with its NOT NULL, and whether a unique index without
#: predicate or expression covers only named columns (then the named tuple is unique too).
_BATCH_KEY_SQL = """
SELECT
  (SELECT coalesce(array_agg(n.name ORDER BY n.i), '{}')
     FROM unnest(%(columns)s::text[]) WITH ORDINALITY AS n(name, i)
    WHERE NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = %(oid)s::regclass
                        AND a.attname = n.name AND a.attnum > 0 AND NOT a.attisdropped)),
  (SELECT coalesce(array_agg(a.attname::text ORDER BY a.attnum), '{}')
     FROM pg_attribute a
    WHERE a.attrelid = %(oid)s::regclass AND a.attname = ANY (%(columns)s::text[])
      AND NOT a.attnotnull),
  EXISTS (SELECT 1 FROM pg_index i
           WHERE i.indrelid = %(oid)s::regclass AND i.indisunique AND i.indisvalid
             AND i.indpred IS NULL AND i.indexprs IS NULL
             AND NOT EXISTS (SELECT 1 FROM unnest(i.indkey[0:i.indnkeyatts - 1]) k(attnum)
                              JOIN pg_attribute a ON a.attrelid = i.indrelid
                                                 AND a.attnum = k.attnum
                              WHERE a.attname <> ALL (%(columns)s::text[])))
"""


def _refused(message: str, hint: str | None = None) -> MigrationFailed:
    return MigrationFailed(message, hint=hint)


def key_facts(
    conn: psycopg.Connection[Any], table: Relation, batch_key: Sequence[str] = ()
) -> KeyFacts:
    """The key of ``table``: its primary key, or ``batch_key`` verified unique and not null.

    A key that cannot serve is refused (MigrationFailed) with what to do instead: batching on
    a column with duplicates or NULLs would skip rows or run them twice.
    """
    from psycopg import sql

    parts = [table.schema, table.name] if table.schema else [table.name]
    name = sql.Identifier(*parts).as_string(conn)
    row = conn.execute(_KEY_SQL, {"name": name}).fetchone()
    if row is None or row[0] is None:
        raise _refused(f"the backfill's table {table} does not exist")
    regclass, primary, estimate = str(row[0]), row[1], row[2]
    if not batch_key:
        if not primary:
            raise _refused(
                f"{regclass} has no primary key to batch along",
                hint="name a unique, NOT NULL column with '-- @batch-key: column'",
            )
        return KeyFacts(regclass, tuple(primary), PRIMARY_KEY, _estimate(estimate))
    check = conn.execute(_BATCH_KEY_SQL, {"oid": regclass, "columns": list(batch_key)}).fetchone()
    assert check is not None
    missing, nullable, unique = check
    if missing:
        raise _refused(f"@batch-key: {regclass} has no column {missing[0]}")
    if nullable:
        raise _refused(
            f"@batch-key: {regclass}.{nullable[0]} may be NULL: rows with a NULL key would never"
            " be in a batch",
            hint="choose NOT NULL columns, or SET NOT NULL first",
        )
    if not unique:
        raise _refused(
            f"@batch-key: no unique index of {regclass} covers only ({', '.join(batch_key)}):"
            " with duplicate keys a batch boundary could fall between equal keys",
            hint="choose columns with a unique index (no WHERE, no expressions)",
        )
    return KeyFacts(regclass, tuple(batch_key), BATCH_KEY, _estimate(estimate))


def _estimate(value: Any) -> int | None:
    return None if value is None else int(value)


def _key(value: Any) -> Key | None:
    return None if value is None else tuple(str(v) for v in value)


class BackfillSession:
    """One backfill on one session: its progress row and its batches.

    ``conn`` is an autocommit session the caller owns (the Target's); ``schema`` pgshift's
    history schema. Call ``prepare`` once before running batches on the session.
    """

    def __init__(self, conn: psycopg.Connection[Any], schema: str, key: KeyFacts) -> None:
        self.conn = conn
        self.schema = schema
        self.key = key
        self._cancellable = False
        self._table_name: pgsql.Composable | None = None

    def _q(self, template: str, **parts: pgsql.Composable) -> pgsql.Composed:
        from psycopg import sql

        return sql.SQL(template).format(s=sql.Identifier(self.schema), **parts)

    def _columns(self) -> tuple[pgsql.Composable, pgsql.Composable]:
        """The key's columns as ``(a, b)`` (or ``a``) and their text ``a::text, b::text``."""
        from psycopg import sql

        names = [sql.Identifier(c) for c in self.key.columns]
        listed = sql.SQL(", ").join(names)
        row = sql.SQL("({})").format(listed) if len(names) > 1 else names[0]
        text = sql.SQL(", ").join(sql.SQL("{}::text").format(n) for n in names)
        return row, text

    def _literals(self, key: Key) -> pgsql.Composable:
        """A key as ``('1', 'a')`` (or ``'1'``): unknown-typed literals the server casts."""
        from psycopg import sql

        values = [sql.Literal(v) for v in key]
        joined = sql.SQL(", ").join(values)
        return sql.SQL("({})").format(joined) if len(values) > 1 else values[0]

    # -- the progress row ---------------------------------------------------------------------

    def read(self, version: str, action: str) -> BackfillState | None:
        row = self.conn.execute(
            self._q(
                "SELECT checksum, key_table, key_columns, upper_key, done_key, rows_done,"
                " rows_estimate, batches, finished_at IS NOT NULL, keys_done"
                " FROM {s}.backfill WHERE version = %s AND action = %s"
            ),
            (version, action),
        ).fetchone()
        if row is None:
            return None
        return BackfillState(
            version=version,
            action=action,
            checksum=str(row[0]),
            key_table=str(row[1]),
            key_columns=tuple(row[2]),
            upper_key=_key(row[3]),
            done_key=_key(row[4]),
            rows_done=int(row[5]),
            rows_estimate=_estimate(row[6]),
            batches=int(row[7]),
            finished=bool(row[8]),
            keys_done=int(row[9]),
        )

    def start(self, version: str, action: str, checksum: str, run_id: str) -> BackfillState:
        """The backfill's progress row: read, or created with the key range fixed now.

        The upper end of the range is the table's last key at this instant; a row written
        later beyond it is never reached, so the application cannot keep the backfill running.
        A row left by an earlier run is taken as it is when it belongs to the same statement
        and key (a resume); otherwise the run is refused as drift.
        """
        state = self.read(version, action)
        if state is None:
            _, text = self._columns()
            last = self.conn.execute(
                self._q(
                    "SELECT {text} FROM {t} AS pgshift_t ORDER BY {row} LIMIT 1",
                    text=text,
                    t=self._table(),
                    row=_order(self.key.columns, descending=True),
                )
            ).fetchone()
            self.conn.execute(
                self._q(
                    "INSERT INTO {s}.backfill (version, action, checksum, key_table,"
                    " key_columns, upper_key, rows_estimate, run_id)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
                ),
                (
                    version,
                    action,
                    checksum,
                    self.key.table,
                    list(self.key.columns),
                    list(last) if last is not None else None,
                    self.key.estimate,
                    run_id,
                ),
            )
            state = self.read(version, action)
            assert state is not None
        if state.checksum != checksum:
            raise DriftError(
                f"backfill {version}: its statement changed since it started"
                f" ({state.rows_done} rows done in {state.batches} batches)",
                hint="restore the file as it was, or finish the backfill before changing it",
            )
        if state.key_columns != self.key.columns or state.key_table != self.key.table:
            raise DriftError(
                f"backfill {version}: it started along {state.key_table}"
                f" ({', '.join(state.key_columns)}), now its key is {self.key.table}"
                f" ({', '.join(self.key.columns)})",
                hint="restore @batch-key as it was while the backfill runs",
            )
        return state

    def _table(self) -> pgsql.Composable:
        """The key table as a quoted schema-qualified name, asked once (regclass text is
        quoted and search_path dependent; its parts are quoted again by psycopg)."""
        from psycopg import sql

        if self._table_name is not None:
            return self._table_name
        row = self.conn.execute(
            "SELECT n.nspname, c.relname FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = %s::regclass",
            (self.key.table,),
        ).fetchone()
        assert row is not None
        self._table_name = sql.Identifier(str(row[0]), str(row[1]))
        return self._table_name

    # -- batches ------------------------------------------------------------------------------

    def prepare(self, statements: BatchStatements) -> None:
        """Prepare the two batch statements on this session (replacing earlier ones)."""
        from psycopg import sql

        for name, text in ((_FIRST, statements.first), (_FOLLOWING, statements.following)):
            exists = self.conn.execute(
                "SELECT 1 FROM pg_prepared_statements WHERE name = %s", (name,)
            ).fetchone()
            if exists:
                self.conn.execute(sql.SQL("DEALLOCATE {}").format(sql.Identifier(name)))
            # The rewritten text goes as it is (no parameters: psycopg leaves any % alone).
            statement = sql.SQL("PREPARE {} AS ").format(sql.Identifier(name)) + sql.SQL(text)
            self.conn.execute(statement)

    def next_bound(self, state: BackfillState, size: int) -> tuple[Key, int] | None:
        """The upper key of the next batch of up to ``size`` keys after ``done_key``, and how
        many keys it covers; None when the range is done."""
        from psycopg import sql

        if state.upper_key is None or state.finished or state.done_key == state.upper_key:
            return None
        row, text = self._columns()
        lower = (
            sql.SQL("{} > {} AND ").format(row, self._literals(state.done_key))
            if state.done_key is not None
            else sql.SQL("")
        )
        where = self._q(
            "FROM {t} AS pgshift_t WHERE {lower}{row} <= {upper}",
            t=self._table(),
            lower=lower,
            row=row,
            upper=self._literals(state.upper_key),
        )
        size = max(size, 1)
        found = self.conn.execute(
            sql.SQL("SELECT {} {} ORDER BY {} LIMIT 1 OFFSET %s").format(
                text, where, _order(self.key.columns, descending=False)
            ),
            (size - 1,),
        ).fetchone()
        if found is not None:
            return tuple(str(v) for v in found), size
        # The last batch: fewer keys than asked are left; count them for an exact progress.
        counted = self.conn.execute(sql.SQL("SELECT count(*) {}").format(where)).fetchone()
        return state.upper_key, int(counted[0]) if counted else 0

    def run_batch(
        self,
        state: BackfillState,
        upper: Key,
        keys: int,
        *,
        run_id: str,
        lock_timeout_ms: int,
        statement_timeout_ms: int,
    ) -> BatchDone:
        """Run the batch ``(done_key, upper]`` and move the progress row, in one transaction.

        ``keys`` is how many keys the batch covers (next_bound's size), added to keys_done.
        Returns the rows the statement touched and how many sessions waited on the batch's
        locks just before it committed (what the loop paces itself by). Raises BackfillMoved
        when the progress row is not at ``state.done_key`` any more, BatchFailed when the
        server refuses the batch; either way nothing of the batch is committed.
        """
        import psycopg
        from psycopg import sql

        conn = self.conn
        if state.done_key is None:
            call = sql.SQL("EXECUTE {}({})").format(sql.Identifier(_FIRST), self._arguments(upper))
        else:
            call = sql.SQL("EXECUTE {}({}, {})").format(
                sql.Identifier(_FOLLOWING), self._arguments(state.done_key), self._arguments(upper)
            )
        finished = upper == state.upper_key
        number = state.batches + 1
        try:
            with conn.transaction():
                conn.execute(
                    "SELECT set_config('lock_timeout', %s, true),"
                    " set_config('statement_timeout', %s, true)",
                    (f"{int(lock_timeout_ms)}ms", f"{int(statement_timeout_ms)}ms"),
                )
                moved = conn.execute(
                    self._q(
                        "UPDATE {s}.backfill SET updated_at = clock_timestamp()"
                        " WHERE version = %s AND action = %s AND finished_at IS NULL"
                        " AND done_key IS NOT DISTINCT FROM %s::text[] RETURNING 1"
                    ),
                    (state.version, state.action, _array(state.done_key)),
                ).fetchone()
                if moved is None:
                    raise BackfillMoved(state.version)
                self._cancellable = True
                try:
                    rows = conn.execute(call).rowcount
                finally:
                    self._cancellable = False
                failpoint(f"backfill-ran:{state.version}:{number}")
                # Before COMMIT, while the batch still holds its row locks: who waits on them.
                waiting = conn.execute(_WAITERS_SQL).fetchone()
                conn.execute(
                    self._q(
                        "UPDATE {s}.backfill SET done_key = %s, rows_done = rows_done + %s,"
                        " keys_done = keys_done + %s, batches = batches + 1, run_id = %s,"
                        " updated_at = clock_timestamp(),"
                        " finished_at = CASE WHEN %s THEN clock_timestamp() END"
                        " WHERE version = %s AND action = %s"
                    ),
                    (
                        list(upper),
                        max(rows, 0),
                        keys,
                        run_id,
                        finished,
                        state.version,
                        state.action,
                    ),
                )
        except psycopg.Error as exc:
            raise BatchFailed(server_error(exc, None)) from None
        failpoint(f"backfill-committed:{state.version}:{number}")
        return BatchDone(max(rows, 0), int(waiting[0]) if waiting else 0)

    def _arguments(self, key: Key) -> pgsql.Composable:
        from psycopg import sql

        return sql.SQL(", ").join(sql.Literal(v) for v in key)

    def finish_empty(self, state: BackfillState, run_id: str) -> None:
        """Mark a backfill over an empty key range finished (nothing to run)."""
        self.conn.execute(
            self._q(
                "UPDATE {s}.backfill SET finished_at = clock_timestamp(), run_id = %s"
                " WHERE version = %s AND action = %s AND finished_at IS NULL"
            ),
            (run_id, state.version, state.action),
        )

    def cancel(self) -> bool:
        """Cancel the batch the server runs now, if one runs (it rolls back whole)."""
        import psycopg

        if not self._cancellable or self.conn.closed:
            return False
        with contextlib.suppress(psycopg.Error):
            self.conn.cancel_safe(timeout=5.0)
        return True

    def replica_lag_ms(self) -> int | None:
        """The largest replay lag of the replicas streaming from this server (None: none).

        A replica that has replayed all the WAL sent to it lags 0, whatever ``replay_lag``
        says: that column keeps the lag measured when replay last crossed a sample, which after
        a long pause is the pause itself, until the replica has reported twice that it is
        caught up (two ``wal_receiver_status_interval``, 20 s by default) or new WAL comes; a
        backfill that waits for it writes no WAL, so it would wait those 20 s for nothing.
        """
        row = self.conn.execute(
            "SELECT max(CASE WHEN replay_lsn >= sent_lsn THEN 0"
            " ELSE extract(epoch FROM replay_lag) * 1000 END)::bigint FROM pg_stat_replication"
        ).fetchone()
        return None if row is None or row[0] is None else int(row[0])


def _order(columns: Key, *, descending: bool) -> pgsql.Composable:
    """ORDER BY the key columns of the table aliased ``pgshift_t``. Qualified on purpose: a
    bare name in ORDER BY means the output column of that name first, which is the key's
    *text* (``id::text`` is output as ``id``), and text orders 99999 after 100000."""
    from psycopg import sql

    direction = sql.SQL(" DESC" if descending else "")
    return sql.SQL(", ").join(sql.Identifier("pgshift_t", c) + direction for c in columns)


def _array(key: Key | None) -> list[str] | None:
    return None if key is None else list(key)


def forget(conn: psycopg.Connection[Any], schema: str, version: str, action: str) -> None:
    """Drop the progress row of ``version``'s ``action`` backfill, finished or not.

    The runner calls it when the migration moves the other way: a backfill applied, reverted
    and applied again must run again, not be found finished by its old row.
    """
    from psycopg import sql

    conn.execute(
        sql.SQL("DELETE FROM {}.backfill WHERE version = %s AND action = %s").format(
            sql.Identifier(schema)
        ),
        (version, action),
    )
