"""PostgresHistoryStore: pgshift's own tables in the target database, and their upgrades.

Identifiers are always composed with psycopg.sql; the tool's schema is versioned by the numbered
.sql files in schema/, applied in order under the runner lock.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import tzinfo
from functools import cache
from typing import TYPE_CHECKING, Any, NamedTuple

from pgshift.db.connect import pg_connection
from pgshift.db.readonly import TextSession, text_session, timestamp
from pgshift.history import (
    EVENT_APPLIED,
    EVENT_CONTRACTED,
    EVENT_FAILED,
    EVENT_REVERT_FAILED,
    EVENT_REVERTED,
    AppliedMigration,
    BackfillProgress,
    Expect,
    History,
    Progress,
    ProgressMoved,
    Session,
)

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql as pgsql
    from psycopg.abc import Transformer

    from pgshift.db.prepared import PreparedForm, PreparedWrites
    from pgshift.plan import ChecksumUpgrade

#: The custom setting a transaction sets to the clock (epoch milliseconds) as it begins, when it is
#: not the first of its message (db/execute.py batches several into one): the server stamps
#: every transaction of one simple-query message with the message's arrival time.
BEGAN_SETTING = "pgshift.began"
#: What such a transaction runs first: the clock into BEGAN_SETTING, for this transaction only.
STAMP_START = (
    b"SELECT pg_catalog.set_config('" + BEGAN_SETTING.encode() + b"',"
    b" (extract(epoch FROM pg_catalog.clock_timestamp()) * 1000)::text, true)"
)

#: Milliseconds since the current transaction began: the history write ends the transaction that
#: ran the migration's statements (in one message, or one by one), so the server measures them.
#: From BEGAN_SETTING when the transaction set it (it is local to the transaction: empty after).
CHUNK_MS = (
    "floor(extract(epoch FROM clock_timestamp()) * 1000 - coalesce(nullif(current_setting('"
    + BEGAN_SETTING
    + "', true), '')::numeric, extract(epoch FROM transaction_timestamp()) * 1000))::bigint"
)


#: Opens a write: ``d.ms`` is the given duration plus what the server measured (CHUNK_MS).
_DURATION = "WITH d AS (SELECT {duration_ms}::bigint + " + CHUNK_MS + " AS ms),"
#: Ends it: the log row of the event, with that duration in its detail.
_LOG_WITH_DURATION = (
    " INSERT INTO {s}.log (run_id, event, version, detail)"
    " SELECT {run_id}, {event}, {version},"
    " {detail} || jsonb_build_object('duration_ms', d.ms) FROM d"
)
#: After the guard: the write answers the duration it recorded, which the runner reports for a
#: transaction that was one of a batch (it cannot time one of those itself).
_RETURNING_MS = " RETURNING (detail ->> 'duration_ms')::bigint"


#: A timestamptz as UTC text that datetime.fromisoformat reads, whatever the DateStyle.
_UTC_TEXT = "to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US')"

#: The whole history in one statement: applied rows, progress rows and the failed versions
#: (whose newest applied / failed / reverted event is a failure), as one JSON document.
_READ = (
    "SELECT json_build_object("
    "'applied', (SELECT coalesce(json_agg(json_build_array(version, description, checksum,"
    " rollback_checksum, " + _UTC_TEXT.format(column="applied_at") + ", duration_ms,"
    " applied_by, host, run_id, metadata, {rollback_sql}) ORDER BY version), '[]')"
    " FROM {s}.applied),"
    "'progress', (SELECT coalesce(json_agg(json_build_array(version, checksum,"
    " prefix_checksum, statements_done, run_id, " + _UTC_TEXT.format(column="updated_at") + ","
    " action) ORDER BY version), '[]') FROM {s}.progress),"
    "'failed', (SELECT coalesce(json_agg(version), '[]') FROM (SELECT DISTINCT ON (version)"
    " version, event FROM {s}.log WHERE event IN (%s, %s, %s) AND version IS NOT NULL"
    " ORDER BY version, id DESC) last WHERE event = %s),"
    "'backfills', {backfills})::text"
)

#: The backfills' progress rows (schema version 4), unfinished ones only: what status, health
#: and /metrics show of a backfill under way or stopped.
_READ_BACKFILLS = (
    "(SELECT coalesce(json_agg(json_build_array(version, action, keys_done, rows_done,"
    " rows_estimate, batches, " + _UTC_TEXT.format(column="updated_at") + ")"
    " ORDER BY version, action), '[]') FROM {s}.backfill WHERE finished_at IS NULL)"
)


class _Shape(NamedTuple):
    """What a history schema holds: its tables, ``applied.rollback_sql``, the backfill table."""

    exists: bool
    rollback_sql: bool
    backfill: bool


_ABSENT = _Shape(False, False, False)


def _shapes(session: TextSession, schemas: Sequence[str]) -> dict[str, _Shape]:
    """Per history schema: whether its tables exist, ``applied`` has ``rollback_sql`` and the
    backfill table exists; one statement.

    Read-only commands read a history an older pgshift made and nobody upgraded yet (only a
    run under the lock upgrades), so a column of a newer schema version may be absent.
    """
    if not schemas:
        return {}
    rows = session.rows(_shapes_query(len(schemas)), tuple(schemas))
    return {str(r[0]): _shape_of_row(r) for r in rows}


def _shape_of_row(row: Sequence[str | None]) -> _Shape:
    """A _Shape from a row of _shapes_query: the name, then its three parts as text."""
    return _Shape(row[1] == "true", row[2] == "true", row[3] == "true")


def _shapes_query(count: int) -> str:
    """The statement of _shapes for ``count`` schema names (its parameters): name, then the
    three parts of _Shape as 'true' or 'false'."""
    # From the catalog, not to_regclass: that raises on a schema the role may not USE, and a
    # role without the grant must reach the check that names it (missing_grant).
    return (
        "SELECT s.name, (c.oid IS NOT NULL)::text, EXISTS (SELECT 1 FROM pg_catalog.pg_attribute"
        " WHERE attrelid = c.oid AND attname = 'rollback_sql' AND NOT attisdropped)::text,"
        " EXISTS (SELECT 1 FROM pg_catalog.pg_class b WHERE b.relnamespace = n.oid"
        " AND b.relname = 'backfill')::text"
        " FROM unnest(ARRAY[" + ", ".join(["%s::text"] * count) + "]) AS s(name)"
        " LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = s.name"
        " LEFT JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = 'applied'"
    )


def _history(document_text: str | None, zone: tzinfo, shape: _Shape) -> History:
    """A History from the JSON document _READ builds, timestamps in the session's zone."""
    document = json.loads(document_text or "{}")
    digest = history_digest(shape, document_text) if document_text is not None else ""
    applied = tuple(
        AppliedMigration(
            version=r[0],
            description=r[1],
            checksum=r[2],
            rollback_checksum=r[3],
            applied_at=timestamp(r[4], zone),
            duration_ms=int(r[5]),
            applied_by=r[6],
            host=r[7],
            run_id=str(r[8]),
            metadata=r[9] or {},
            rollback_sql=r[10],
        )
        for r in document.get("applied", ())
    )
    progress = tuple(
        Progress(r[0], r[1], r[2], int(r[3]), str(r[4]), timestamp(r[5], zone), r[6])
        for r in document.get("progress", ())
    )
    failed = frozenset(document.get("failed", ()))
    applied_versions = {a.version for a in applied}
    backfills = tuple(
        BackfillProgress(
            r[0],
            r[1],
            int(r[2]),
            int(r[3]),
            None if r[4] is None else int(r[4]),
            int(r[5]),
            timestamp(r[6], zone),
        )
        for r in document.get("backfills", ())
    )
    return History(applied, progress, failed - applied_versions, backfills, digest)


def history_digest(shape: _Shape, document_text: str) -> str:
    """What a history read stands for: its schema's shape and the SHA-256 of the document.

    The same text as the server's ``DIGEST_SQL`` gives over the same document, so a command
    with nothing to do can ask the server for it instead of reading the whole history.
    """
    return _shape_digest(shape, hashlib.sha256(document_text.encode("utf-8")).hexdigest())


def _shape_digest(shape: _Shape, document_sha256: str) -> str:
    return _shape_bits(shape) + ":" + document_sha256


def _shape_bits(shape: _Shape) -> str:
    """``shape`` as its parts' bits, "111": how digests, stamps and StatusFacts name it."""
    return "".join("1" if part else "0" for part in shape)


def _shape_of_bits(bits: str) -> _Shape:
    return _Shape(*(part == "1" for part in bits[:3]))


@contextlib.contextmanager
def _one_snapshot(session: TextSession) -> Iterator[None]:
    """A read-only repeatable-read transaction: what is read inside comes from one snapshot."""
    session.rows("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    try:
        yield
    finally:
        session.rows("COMMIT")


#: The server's SHA-256 of a history document (the read statement in place of ``{read}``):
#: the bytes it hashes are those a UTF8 client receives, which history_digest hashes.
DIGEST_SQL = "SELECT encode(sha256(convert_to(d.doc, 'UTF8')), 'hex') FROM ({read}) AS d(doc)"

#: The row versions of every table a history read reads (the tables in place of ``{s}``),
#: and which server and database they are on; ``{backfill}`` is the backfill table's part.
#: Every write gives the rows it touches the writing transaction's id (xmin), and a committed
#: row version never changes, so the same stamp means the same rows. Nothing is formatted but
#: those ids and the keys, so it costs a tenth of hashing the history itself (DIGEST_SQL).
#: The server's start time tells two servers apart, whose transaction ids may repeat.
_STAMP = (
    "SELECT md5(concat_ws('|', pg_catalog.pg_postmaster_start_time()::text,"
    " (SELECT oid::text FROM pg_catalog.pg_database WHERE datname = current_database()),"
    " (SELECT string_agg(xmin::text || ':' || version, ',' ORDER BY version) FROM {s}.applied),"
    " (SELECT string_agg(xmin::text || ':' || version || ':' || action, ','"
    " ORDER BY version, action) FROM {s}.progress),"
    " (SELECT string_agg(xmin::text || ':' || id, ',' ORDER BY id) FROM {s}.log"
    " WHERE event IN (%s, %s, %s) AND version IS NOT NULL),"
    " {backfill}))"
)
_STAMP_BACKFILL = (
    "(SELECT string_agg(xmin::text || ':' || version || ':' || action, ','"
    " ORDER BY version, action) FROM {s}.backfill)"
)


#: Histories read by one statement at most. The server's planning of a UNION ALL grows faster
#: than its branches: over 1,000 tenant histories, one statement took 1.2-2.2 s, statements of
#: 10-40 branches 0.4-0.7 s (PostgreSQL 18, 2 busy CPUs), so a database's tenants are read in
#: statements of this many, one after the other on the same session.
HISTORIES_PER_STATEMENT = 25


def read_many(
    conn: psycopg.Connection[tuple[Any, ...]] | TextSession, schemas: Sequence[str]
) -> dict[str, History]:
    """The histories of many history schemas of one database, in a few statements.

    One statement asks which of them exist (_shapes); then each statement reads up to
    HISTORIES_PER_STATEMENT of those that do, as a UNION ALL of each store's own read
    statement (PostgresHistoryStore._read_query), so the SQL of a history read is written
    once. An absent schema is an empty history, as in read.
    """
    session = text_session(conn)
    shapes = _shapes(session, schemas)
    found = {name: History() for name in schemas}
    present = [name for name in dict.fromkeys(schemas) if shapes.get(name, _ABSENT).exists]
    for start in range(0, len(present), HISTORIES_PER_STATEMENT):
        parts: list[str] = []
        params: list[str] = []
        for name in present[start : start + HISTORIES_PER_STATEMENT]:
            query, values = PostgresHistoryStore(name)._read_query(session, shapes[name])
            parts.append(f"SELECT %s::text, ({query})")
            params += [name, *values]
        for row in session.rows(" UNION ALL ".join(parts), params):
            found[str(row[0])] = _history(row[1], session.timezone, shapes[str(row[0])])
    return found


def read_histories(url: str | None, schemas: Sequence[str], purpose: str) -> dict[str, History]:
    """read_many over one short read-only session of its own: libpq where it loads, else psycopg."""
    from pgshift.db.readonly import LibpqSession

    reader = LibpqSession.open(url, purpose=purpose)
    if reader is not None:
        with reader:
            return read_many(reader, schemas)
    from pgshift.db.connect import open_connection

    with open_connection(url, purpose=purpose) as conn:
        return read_many(conn, schemas)


@cache
def schema_files() -> tuple[tuple[int, str, str], ...]:
    """(number, name, sql) of the tool's own schema versions, in order: package data, read once
    per process (a fleet asks for them per new tenant)."""
    from importlib import resources  # only under the lock: a read never needs it

    folder = resources.files("pgshift.db") / "schema"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.name, entry.read_text("utf-8")))
    return tuple(sorted(found))


class PostgresHistoryStore:
    """Reads and writes history through connections the caller owns (so writes join its txn)."""

    def __init__(self, schema: str) -> None:
        self.schema = schema
        self._templates: dict[str, list[bytes | str]] = {}
        self._forms: dict[str, PreparedForm] = {}
        self._tx: tuple[psycopg.Connection[tuple[Any, ...]], Transformer] | None = None

    def _q(self, template: str) -> pgsql.Composed:
        """Compose ``template`` with ``{s}`` standing for the quoted history schema."""
        from psycopg import sql

        return sql.SQL(template).format(s=sql.Identifier(self.schema))

    # -- schema -------------------------------------------------------------------------------

    def exists(self, conn: psycopg.Connection[tuple[Any, ...]] | TextSession) -> bool:
        return self._shape(text_session(conn))[0]

    def _shape(self, session: TextSession) -> _Shape:
        """What this history schema holds (_Shape), in one round trip."""
        return _shapes(session, (self.schema,)).get(self.schema, _ABSENT)

    def upgrade(
        self, conn: psycopg.Connection[tuple[Any, ...]], *, tenant_schema: str | None = None
    ) -> list[str]:
        """Bring the tool's tables to the newest version; call only while holding the lock.

        ``tenant_schema``: a fleet tenant's schema, created with its new history when missing
        (a new tenant gets every migration).

        One round trip asks what is there. A history that has none of pgshift's tables yet is
        then created whole in ONE message (_create_whole): every fleet tenant's first run does
        this, and one statement a round trip made it ~17 round trips per tenant. An existing
        history gets each newer file in a transaction of its own.
        """
        from psycopg import sql

        history = sql.Identifier(self.schema).as_string(conn)
        tenant = sql.Identifier(tenant_schema).as_string(conn) if tenant_schema else None
        row = conn.execute(
            "SELECT to_regnamespace(%s) IS NOT NULL, to_regclass(%s) IS NOT NULL,"
            " to_regnamespace(%s) IS NOT NULL",
            (history, f"{history}.schema_version", tenant),
        ).fetchone()
        assert row is not None
        history_exists, versioned, tenant_exists = (bool(v) for v in row)
        create = [] if tenant_schema is None or tenant_exists else [tenant_schema]
        if not versioned:
            return self._create_whole(conn, [*create, *([] if history_exists else [self.schema])])
        for schema in create:  # the tenant's schema, missing beside a history that exists
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        found = conn.execute(self._q("SELECT coalesce(max(version), 0) FROM {s}.schema_version"))
        current = int(found.fetchone()[0])  # type: ignore[index]
        done: list[str] = []
        for number, name, body in schema_files():
            if number <= current:
                continue
            with conn.transaction():
                conn.execute(self._search_path_sql(conn))
                conn.execute(body.encode())
                conn.execute(self._version_row(number, name))
            done.append(name)
        return done

    def _create_whole(
        self, conn: psycopg.Connection[tuple[Any, ...]], schemas: list[str]
    ) -> list[str]:
        """A new history, every file of it, in one transaction sent as one message.

        Whole, because its tables never exist in an older shape that a later file must ALTER
        while other runners' backups read them (an ACCESS EXCLUSIVE queued behind a backup's
        snapshot blocks that backup's pg_dump). One message of several statements is one
        implicit transaction: if any statement fails, none of them stays, the schemas created
        here included. ``schemas`` are created first, only those found missing: CREATE SCHEMA IF
        NOT EXISTS needs CREATE on the database even when the schema exists (an administrator
        may have made it for a role without that grant).
        """
        from psycopg import sql

        parts: list[sql.Composable] = [
            sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema))
            for schema in schemas
        ]
        parts.append(self._search_path_sql(conn))
        parts.append(
            self._q(
                "CREATE TABLE {s}.schema_version ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
        )
        done: list[str] = []
        for number, name, body in schema_files():
            parts.append(sql.SQL(body))  # pgshift's own file, not a template: nothing to format
            parts.append(self._version_row(number, name))
            done.append(name)
        # Each part ends on a line of its own: a file's last line may be a comment.
        conn.execute(sql.SQL("\n;\n").join(parts).as_bytes(conn))
        return done

    def _search_path_sql(self, conn: psycopg.Connection[tuple[Any, ...]]) -> pgsql.Composed:
        """The history schema as the search_path of the rest of the transaction (the schema
        files name their tables unqualified); set_config takes the path as text."""
        from psycopg import sql

        path = sql.Identifier(self.schema).as_string(conn)
        return sql.SQL("SELECT set_config('search_path', {}, true)").format(sql.Literal(path))

    def _version_row(self, number: int, name: str) -> pgsql.Composed:
        from psycopg import sql

        return sql.SQL("INSERT INTO {s}.schema_version (version, name) VALUES ({n}, {f})").format(
            s=sql.Identifier(self.schema), n=sql.Literal(number), f=sql.Literal(name)
        )

    # -- reading ------------------------------------------------------------------------------

    def read(self, conn: Session | TextSession) -> History:
        """The whole history; an absent schema is an empty history (read-only commands).

        ``conn`` is a psycopg connection or any TextSession (a libpq session of readonly.py,
        which spares a no-op command psycopg's import). The server builds the whole history as
        one JSON document in one statement (one snapshot, one value to decode instead of a
        Python object per cell), and timestamps travel as UTC text, so the result does not
        depend on the session's DateStyle; they come back in the session's TimeZone, as
        psycopg gives a timestamptz.
        """
        session = text_session(conn)
        shape = self._shape(session)
        if not shape.exists:
            return History()
        query, params = self._read_query(session, shape)
        rows = session.rows(query, params)
        return _history(rows[0][0] if rows else None, session.timezone, shape)

    def stamp(self, conn: Session | TextSession) -> str:
        """The stamp of this history's rows as they are now (_STAMP): equal stamps, equal
        rows; "" when there is no history. Cheap, but not comparable with History.digest:
        ``verified_stamp`` ties the two."""
        session = text_session(conn)
        shape = self._shape(session)
        return self._stamp(session, shape) if shape.exists else ""

    def _stamp(self, session: TextSession, shape: _Shape) -> str:
        query, params = self._stamp_query(session, shape)
        rows = session.rows(query, params)
        stamp = rows[0][0] if rows else None
        return _shape_digest(shape, stamp) if stamp else ""

    def _stamp_query(self, session: TextSession, shape: _Shape) -> tuple[str, list[str]]:
        """The statement of the stamp (_STAMP) of a history of ``shape``, and its parameters."""
        backfill = _STAMP_BACKFILL if shape.backfill else "''"
        query = _STAMP.replace("{backfill}", backfill)
        query = query.replace("{s}", session.identifier(self.schema).replace("%", "%%"))
        return query, [EVENT_APPLIED, EVENT_FAILED, EVENT_REVERTED]

    def verified_stamp(self, session: TextSession, digest: str) -> str:
        """The stamp of the history whose read gave ``digest`` (History.digest), or "" when
        the history is no longer that one.

        The stamp and the history's digest are taken from one snapshot (a repeatable-read
        transaction), so the stamp returned stands for exactly the rows that were read.
        """
        if not digest:
            return ""
        with _one_snapshot(session):
            stamp = self.stamp(session)
            same = bool(stamp) and self.digest(session) == digest
        return stamp if same else ""

    def digest(self, conn: Session | TextSession) -> str:
        """The digest ``read`` would give the history now (History.digest), hashed by the
        server, so that the whole history never travels; "" when there is no history."""
        session = text_session(conn)
        shape = self._shape(session)
        if not shape.exists:
            return ""
        query, params = self._read_query(session, shape)
        rows = session.rows(DIGEST_SQL.replace("{read}", query), params)
        if not rows or rows[0][0] is None:
            return ""
        return _shape_digest(shape, str(rows[0][0]))

    def _read_query(self, session: TextSession, shape: _Shape) -> tuple[str, list[str]]:
        """The one statement that reads this history (see read), with its parameters."""
        query = _READ.replace("{rollback_sql}", "rollback_sql" if shape.rollback_sql else "NULL")
        query = query.replace("{backfills}", _READ_BACKFILLS if shape.backfill else "'[]'::json")
        # A "%" in the quoted name must not read as a placeholder.
        query = query.replace("{s}", session.identifier(self.schema).replace("%", "%%"))
        return query, [EVENT_APPLIED, EVENT_FAILED, EVENT_REVERTED, EVENT_FAILED]

    def last_up_run(self, session: Session) -> str | None:
        """The run id of the newest run that set out to apply migrations (`rollback emergency`).

        Read from the run_started events, whose steps name their action, so rollback runs and
        runs with nothing left to do are not mistaken for it.
        """
        conn = pg_connection(session)
        if not self.exists(conn):
            return None
        row = conn.execute(
            self._q(
                "SELECT run_id::text FROM {s}.log WHERE event = 'run_started'"
                " AND run_id IS NOT NULL AND EXISTS (SELECT 1 FROM"
                " jsonb_array_elements(coalesce(detail->'steps', '[]'::jsonb)) AS st"
                " WHERE st->>1 = 'apply') ORDER BY id DESC LIMIT 1"
            )
        ).fetchone()
        return str(row[0]) if row else None

    # -- writing (inside the caller's transaction when it has one) -----------------------------

    def upgrade_checksums(
        self,
        conn: psycopg.Connection[tuple[Any, ...]],
        upgrades: Sequence[ChecksumUpgrade],
        run_id: str | None = None,
    ) -> list[str]:
        """Replace older pgshift's text checksums by statement checksums; call under the lock.

        Each row changes only while it still holds the old value, so a row another run
        rewrote meanwhile is left alone; one ``checksums_upgraded`` event lists the versions.
        Returns the versions changed.
        """
        changed: list[str] = []
        with conn.transaction():
            for u in upgrades:
                cursor = conn.execute(
                    self._q(
                        "UPDATE {s}.applied SET checksum = %s,"
                        " rollback_checksum = coalesce(%s, rollback_checksum)"
                        " WHERE version = %s AND checksum = %s"
                    ),
                    (u.new, u.rollback_new, u.version, u.old),
                )
                if cursor.rowcount:
                    changed.append(u.version)
            if changed:
                detail = {"versions": changed, "reason": "checksums now cover the statements"}
                self.log(conn, run_id, "checksums_upgraded", None, detail)
        return changed

    def log(
        self,
        session: Session,
        run_id: str | None,
        event: str,
        version: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        conn = pg_connection(session)
        conn.execute(
            self._q("INSERT INTO {s}.log (run_id, event, version, detail) VALUES (%s, %s, %s, %s)"),
            (run_id, event, version, json.dumps(dict(detail or {}), default=str)),
        )

    def _compose(
        self,
        conn: psycopg.Connection[tuple[Any, ...]],
        template: str,
        *,
        prepared: PreparedWrites | None = None,
        **values: Any,
    ) -> bytes:
        """``template`` with ``{s}`` the quoted schema and every other field a bound literal.

        Literals rather than parameters, so these writes can travel inside the one simple-query
        message that carries a whole migration (see db/execute.py). psycopg does the quoting
        (its Transformer's literals, client-side binding). The template is composed once per
        store into its SQL pieces and the names between them, and one Transformer per
        connection keeps its dumpers: a ClientCursor's mogrify per migration re-read the
        query and looked up 17 dumpers each time (0.1 ms of an `up`'s 0.8 ms per migration).
        With ``prepared`` (the runner's session: db/prepared.py), the write is an `EXECUTE` of
        the template PREPAREd once on that session, with the same literals as its arguments.
        """
        from psycopg.types.json import Jsonb

        pieces = self._templates.get(template)
        if pieces is None:
            pieces = self._templates[template] = self._pieces(conn, template, values)
        tx = self._transformer(conn)

        def literal(name: str) -> bytes:
            value = values[name]
            if value is None:
                return b"NULL"
            return tx.as_literal(Jsonb(value) if isinstance(value, dict) else value)

        if prepared is not None:
            from pgshift.db.prepared import execute_sql, prepared_form

            form = self._forms.get(template)
            if form is None:
                form = self._forms[template] = prepared_form(pieces)
            if prepared.ready(form):
                return execute_sql(form, [literal(name) for name in form.fields])
        return b"".join(p if isinstance(p, bytes) else literal(p) for p in pieces)

    def _pieces(
        self, conn: psycopg.Connection[tuple[Any, ...]], template: str, values: Mapping[str, Any]
    ) -> list[bytes | str]:
        """``template`` composed: its SQL as bytes (the schema quoted in), a field by name."""
        from psycopg import sql

        placeholders = {key: sql.Placeholder(key) for key in values}
        names = {id(placeholder): key for key, placeholder in placeholders.items()}
        composed = sql.SQL(template).format(s=sql.Identifier(self.schema), **placeholders)
        pieces: list[bytes | str] = []
        for part in composed:
            if isinstance(part, sql.Placeholder):  # format() places the very objects given
                pieces.append(names[id(part)])
            elif pieces and isinstance(pieces[-1], bytes):
                pieces[-1] += part.as_bytes(conn)
            else:
                pieces.append(part.as_bytes(conn))
        return pieces

    def _transformer(self, conn: psycopg.Connection[tuple[Any, ...]]) -> Transformer:
        """The Transformer binding literals for ``conn``, made once per connection."""
        from psycopg.adapt import Transformer as Binder

        known = self._tx  # one read: a fleet's threads may share this store
        if known is not None and known[0] is conn:
            return known[1]
        tx = Binder.from_context(conn)
        self._tx = (conn, tx)
        return tx

    def applied_sql(
        self,
        conn: psycopg.Connection[tuple[Any, ...]],
        row: AppliedMigration,
        detail: Mapping[str, Any] | None = None,
        *,
        expect: Expect | None = None,
        prepared: PreparedWrites | None = None,
    ) -> bytes:
        """Insert the applied row, clear progress and log it, in one statement.

        With ``expect``, only while the progress row is exactly that (compare-and-set): else
        the statement raises PGSMV and the transaction, the migration's statements included,
        rolls back.
        """
        guard, values = _guard(expect, row.version)
        return self._compose(
            conn,
            _DURATION + " a AS (INSERT INTO {s}.applied (version, description, checksum,"
            " rollback_checksum, rollback_sql, duration_ms, applied_by, host, run_id, metadata)"
            " SELECT {version}, {description}, {checksum}, {rollback_checksum}, {rollback_sql},"
            " d.ms, {applied_by}, {host}, {run_id}, {metadata} FROM d),"
            " p AS (DELETE FROM {s}.progress WHERE version = {version}"
            " RETURNING action, statements_done)" + _LOG_WITH_DURATION + guard + _RETURNING_MS,
            prepared=prepared,
            **values,
            version=row.version,
            description=row.description,
            checksum=row.checksum,
            rollback_checksum=row.rollback_checksum,
            rollback_sql=row.rollback_sql,
            duration_ms=row.duration_ms,
            applied_by=row.applied_by,
            host=row.host,
            run_id=row.run_id,
            metadata=dict(row.metadata),
            event=EVENT_APPLIED,
            detail=dict(detail or {}),
        )

    def reverted_sql(
        self,
        conn: psycopg.Connection[tuple[Any, ...]],
        version: str,
        run_id: str,
        detail: Mapping[str, Any] | None = None,
        duration_ms: int = 0,
        *,
        expect: Expect | None = None,
        prepared: PreparedWrites | None = None,
    ) -> bytes:
        """Delete the applied row and progress and log the revert, in one statement.

        The progress row of the migration's own backfill goes too: a backfill that committed
        batches but was never recorded applied is half-applied, and only this revert, in the
        same transaction, may forget it (a kill before leaves it to be reverted again).
        With ``expect``, only while the progress row is exactly that and something is there
        to revert (the applied row, a progress row or a backfill's): else PGSMV, as for
        applied_sql.
        """
        guard, values = _guard(expect, version, reverting=True)
        return self._compose(
            conn,
            _DURATION + " a AS (DELETE FROM {s}.applied WHERE version = {version} RETURNING 1),"
            " b AS (DELETE FROM {s}.backfill WHERE version = {version} AND action = 'apply'"
            " RETURNING 1),"
            " p AS (DELETE FROM {s}.progress WHERE version = {version}"
            " RETURNING action, statements_done)" + _LOG_WITH_DURATION + guard + _RETURNING_MS,
            prepared=prepared,
            **values,
            version=version,
            run_id=run_id,
            event=EVENT_REVERTED,
            duration_ms=duration_ms,
            detail=dict(detail or {}),
        )

    def contracted_sql(
        self,
        conn: psycopg.Connection[tuple[Any, ...]],
        version: str,
        run_id: str,
        duration_ms: int = 0,
        *,
        expect: Expect | None = None,
        prepared: PreparedWrites | None = None,
    ) -> bytes:
        """Mark the applied row's expansion contracted, clear progress and log it, in one
        statement; with ``expect``, only from exactly that progress row (compare-and-set)."""
        guard, values = _guard(expect, version)
        return self._compose(
            conn,
            _DURATION + " a AS (UPDATE {s}.applied SET metadata = jsonb_set(metadata,"
            " '{{expand,phase}}', '\"contracted\"') WHERE version = {version} RETURNING 1),"
            " p AS (DELETE FROM {s}.progress WHERE version = {version}"
            " RETURNING action, statements_done)" + _LOG_WITH_DURATION + guard + _RETURNING_MS,
            prepared=prepared,
            **values,
            version=version,
            run_id=run_id,
            event=EVENT_CONTRACTED,
            duration_ms=duration_ms,
            detail={},
        )

    def record_contracted(
        self, session: Session, version: str, run_id: str, *, expect: Expect | None = None
    ) -> None:
        """Write what contracted_sql says, in the caller's transaction."""
        conn = pg_connection(session)
        with _moved(version, expect):
            conn.execute(self.contracted_sql(conn, version, run_id, expect=expect))

    def progress_sql(
        self,
        conn: psycopg.Connection[tuple[Any, ...]],
        progress: Progress,
        *,
        expect: Expect | None = None,
        prepared: PreparedWrites | None = None,
    ) -> bytes:
        """Record how far a migration got; with ``expect``, only from exactly that row.

        The compare-and-set form inserts only where no row is expected, and otherwise moves
        the row only from the action and statement count the run left it at; anything else
        raises PGSMV in the transaction of the statements it counts.
        """
        if expect is not None:
            return self._moved_progress_sql(conn, progress, expect, prepared)
        return self._compose(
            conn,
            "INSERT INTO {s}.progress (version, action, checksum, prefix_checksum,"
            " statements_done, run_id) VALUES ({version}, {action}, {checksum},"
            " {prefix_checksum}, {statements_done}, {run_id})"
            " ON CONFLICT (version) DO UPDATE SET action = excluded.action,"
            " checksum = excluded.checksum, prefix_checksum = excluded.prefix_checksum,"
            " statements_done = excluded.statements_done, run_id = excluded.run_id,"
            " updated_at = clock_timestamp()",
            prepared=prepared,
            version=progress.version,
            action=progress.action,
            checksum=progress.checksum,
            prefix_checksum=progress.prefix_checksum,
            statements_done=progress.statements_done,
            run_id=progress.run_id,
        )

    def _moved_progress_sql(
        self,
        conn: psycopg.Connection[tuple[Any, ...]],
        progress: Progress,
        expect: Expect,
        prepared: PreparedWrites | None,
    ) -> bytes:
        if expect.action is None:
            write = (
                "INSERT INTO {s}.progress (version, action, checksum, prefix_checksum,"
                " statements_done, run_id) VALUES ({version}, {action}, {checksum},"
                " {prefix_checksum}, {statements_done}, {run_id})"
                " ON CONFLICT (version) DO NOTHING RETURNING 1"
            )
        else:
            write = (
                "UPDATE {s}.progress SET action = {action}, checksum = {checksum},"
                " prefix_checksum = {prefix_checksum}, statements_done = {statements_done},"
                " run_id = {run_id}, updated_at = clock_timestamp()"
                " WHERE version = {version} AND action = {expected_action}"
                " AND statements_done = {expected_done} RETURNING 1"
            )
        return self._compose(
            conn,
            "WITH w AS (" + write + ") SELECT {s}.expect(EXISTS (SELECT 1 FROM w), {message})",
            prepared=prepared,
            version=progress.version,
            action=progress.action,
            checksum=progress.checksum,
            prefix_checksum=progress.prefix_checksum,
            statements_done=progress.statements_done,
            run_id=progress.run_id,
            expected_action=expect.action or "",
            expected_done=expect.statements_done,
            message=str(ProgressMoved(progress.version, expect)),
        )

    def record_applied(
        self,
        session: Session,
        row: AppliedMigration,
        detail: Mapping[str, Any] | None = None,
        *,
        expect: Expect | None = None,
    ) -> None:
        """Write what applied_sql says, in the caller's transaction."""
        conn = pg_connection(session)
        with _moved(row.version, expect):
            conn.execute(self.applied_sql(conn, row, detail, expect=expect))

    def record_reverted(
        self,
        session: Session,
        version: str,
        run_id: str,
        detail: Mapping[str, Any] | None = None,
        *,
        expect: Expect | None = None,
    ) -> None:
        """Write what reverted_sql says, in the caller's transaction."""
        conn = pg_connection(session)
        with _moved(version, expect):
            conn.execute(self.reverted_sql(conn, version, run_id, detail, expect=expect))

    def record_adopted(
        self,
        conn: psycopg.Connection[tuple[Any, ...]],
        rows: Sequence[AppliedMigration],
        event: str,
        details: Sequence[Mapping[str, Any]],
    ) -> None:
        """Record ``rows`` as applied without running them (`baseline`, `import`), in one
        transaction: each applied row, and one ``event`` log row per migration with its detail.
        """
        with conn.transaction():
            for row, detail in zip(rows, details, strict=True):
                conn.execute(
                    self._q(
                        "INSERT INTO {s}.applied (version, description, checksum,"
                        " rollback_checksum, rollback_sql, duration_ms, applied_by, host, run_id,"
                        " metadata) VALUES (%s, %s, %s, %s, %s, 0, %s, %s, %s, %s)"
                    ),
                    (
                        row.version,
                        row.description,
                        row.checksum,
                        row.rollback_checksum,
                        row.rollback_sql,
                        row.applied_by,
                        row.host,
                        row.run_id,
                        json.dumps(dict(row.metadata), default=str),
                    ),
                )
                self.log(conn, row.run_id, event, row.version, detail)

    def clear_progress(self, session: Session, version: str) -> None:
        pg_connection(session).execute(
            self._q("DELETE FROM {s}.progress WHERE version = %s"), (version,)
        )

    def save_progress(
        self,
        session: Session,
        progress: Progress,
        *,
        expect: Expect | None = None,
    ) -> None:
        conn = pg_connection(session)
        with _moved(progress.version, expect):
            conn.execute(self.progress_sql(conn, progress, expect=expect))

    def record_failed(
        self,
        session: Session,
        run_id: str,
        version: str,
        detail: Mapping[str, Any],
        *,
        action: str = "apply",
    ) -> None:
        event = EVENT_FAILED if action == "apply" else EVENT_REVERT_FAILED
        self.log(session, run_id, event, version, detail)


def _guard(
    expect: Expect | None, version: str, *, reverting: bool = False
) -> tuple[str, dict[str, Any]]:
    """The WHERE that makes a write with ``expect`` raise PGSMV unless the deleted progress
    row (CTE ``p``) was exactly the expected one, and for a revert, unless something was
    reverted (CTE ``a``, the applied row, ``p``, or ``b``, a backfill's). Empty without
    ``expect``."""
    if expect is None:
        return "", {}
    if expect.action is None:
        found = "NOT EXISTS (SELECT 1 FROM p)"
    else:
        found = (
            "EXISTS (SELECT 1 FROM p WHERE action = {expected_action}"
            " AND statements_done = {expected_done})"
        )
    if reverting:
        found += (
            " AND (EXISTS (SELECT 1 FROM a) OR EXISTS (SELECT 1 FROM p)"
            " OR EXISTS (SELECT 1 FROM b))"
        )
    values: dict[str, Any] = {
        "expected_action": expect.action or "",
        "expected_done": expect.statements_done,
        "message": str(ProgressMoved(version, expect)),
    }
    return " WHERE {s}.expect(" + found + ", {message})", values


@contextlib.contextmanager
def _moved(version: str, expect: Expect | None) -> Iterator[None]:
    """The server's PGSMV as the store's ProgressMoved (the driver's error stays in db/)."""
    import psycopg

    try:
        yield
    except psycopg.Error as exc:
        from pgshift.execution import PROGRESS_MOVED  # not on the read path: 3 ms of import

        if expect is not None and getattr(exc, "sqlstate", None) == PROGRESS_MOVED:
            raise ProgressMoved(version, expect) from None
        raise


@dataclass(frozen=True)
class MissingGrant:
    """What the session's role lacks to create or use pgshift's history schema."""

    schema: str
    role: str
    why: str  # e.g. 'it lacks CREATE on database "app"'
    grant: str  # the statement an administrator runs, identifiers quoted by the driver
    instead: str | None = None  # what an administrator may run instead of the grant

    @property
    def message(self) -> str:
        return (
            f'role "{self.role}" may not create or use pgshift\'s history schema'
            f' "{self.schema}" (PGSHIFT_SCHEMA): {self.why}'
        )

    @property
    def hint(self) -> str:
        instead = f", or `{self.instead}`" if self.instead else ""
        return (
            f"as an administrator, run `{self.grant}`{instead}; or point PGSHIFT_SCHEMA at a"
            " schema this role may use"
        )


def missing_grant(session: Session | TextSession, schema: str) -> MissingGrant | None:
    """What the role lacks to keep pgshift's history in ``schema``, asked before anything runs.

    `CREATE SCHEMA` needs CREATE on the database, creating the tables CREATE on the schema,
    and using them USAGE on it: a run that found out only on the way (after its backup) would
    fail with a bare "permission denied". One read-only statement; None when all is there.
    """
    text = text_session(session)
    quoted = text.identifier(schema)
    rows = text.rows(_GRANT_FACTS, (quoted,))
    return _missing(text, schema, rows[0])


#: What missing_grant decides from, in one row (its parameter: the quoted schema name): the
#: role, the database, whether the schema exists, and the role's CREATE on the database and
#: CREATE and USAGE on the schema ('true' or 'false').
_GRANT_FACTS = (
    "SELECT current_user, current_database(), (n.oid IS NOT NULL)::text,"
    " has_database_privilege(current_database(), 'CREATE')::text,"
    " coalesce(has_schema_privilege(n.oid, 'CREATE'), false)::text,"
    " coalesce(has_schema_privilege(n.oid, 'USAGE'), false)::text"
    " FROM (SELECT to_regnamespace(%s) AS oid) n"
)


def _missing(text: TextSession, schema: str, facts: Sequence[str | None]) -> MissingGrant | None:
    """missing_grant's answer from its facts (_GRANT_FACTS' row)."""
    role, database, exists, create_db, create_schema, usage = facts
    quoted = text.identifier(schema)
    who = text.identifier(str(role))
    if exists != "true":
        if create_db == "true":
            return None
        return MissingGrant(
            schema,
            str(role),
            f'the schema does not exist and the role lacks CREATE on database "{database}"',
            f"GRANT CREATE ON DATABASE {text.identifier(str(database))} TO {who}",
            f"CREATE SCHEMA {quoted} AUTHORIZATION {who}",
        )
    if usage != "true" or create_schema != "true":
        # A newer pgshift's upgrade creates tables there: refused now, not half-way then.
        return MissingGrant(
            schema, str(role), "the role lacks USAGE or CREATE on that schema",
            f"GRANT USAGE, CREATE ON SCHEMA {quoted} TO {who}",
        )  # fmt: skip
    return None


# -- what a remembered status is keyed by -------------------------------------------------------


@dataclass(frozen=True)
class StatusFacts:
    """What `pgshift status` shows that neither the files nor the history's rows say, and the
    stamp of those rows, read in one statement (status_facts): what a remembered status is
    kept under (ops/status_memory.py).
    """

    shape: str  # the parts the history schema has, "111" (_Shape): what the stamp reads
    stamp: str  # PostgresHistoryStore.stamp now; "" without a history, or of another shape
    timezone: str  # the session's TimeZone: `status` shows applied_at in it
    grant: tuple[str, ...]  # what missing_grant decides from (_GRANT_FACTS)
    missing: MissingGrant | None
    running: dict[str, str]  # running_steps: {version: action} a live run executes now


def status_facts(session: TextSession, schema: str, shape: str | None = None) -> StatusFacts:
    """The StatusFacts of the history in ``schema``, in one statement when ``shape`` is given.

    ``shape`` is the shape the history had when a status was remembered (StatusFacts.shape):
    it names the tables the stamp reads, which spares asking for them first. A history of
    another shape now is stamped "" (a table gone makes the statement fail instead).
    """
    from pgshift.db.activity import RUNNING_QUERIES, steps_in

    store = PostgresHistoryStore(schema)
    expected = store._shape(session) if shape is None else _shape_of_bits(shape)
    stamp_sql, stamp_params = (
        store._stamp_query(session, expected) if expected.exists else ("SELECT NULL::text", [])
    )
    row = session.rows(
        "WITH shape AS (" + _shapes_query(1) + "), grants AS (" + _GRANT_FACTS + ")"
        " SELECT shape.*, grants.*, current_setting('TimeZone'),"
        " (SELECT json_agg(r.query) FROM (" + RUNNING_QUERIES + ") r)::text,"
        " (" + stamp_sql + ") FROM shape, grants",
        [schema, session.identifier(schema), *stamp_params],
    )[0]
    actual = _shape_of_row(row)
    stamp = row[12]
    return StatusFacts(
        shape=_shape_bits(actual),
        stamp=_shape_digest(actual, stamp) if stamp and actual == expected else "",
        timezone=str(row[10]),
        grant=tuple(str(value) for value in row[4:10]),
        missing=_missing(session, schema, row[4:10]),
        running=steps_in(json.loads(row[11]) if row[11] else [], schema),
    )


def read_with_facts(session: Session | TextSession, schema: str) -> tuple[History, StatusFacts]:
    """The history in ``schema`` and its StatusFacts, from one snapshot (a repeatable-read
    transaction): the stamp stands for exactly the rows read, as verified_stamp's does."""
    text = text_session(session)
    with _one_snapshot(text):
        facts = status_facts(text, schema)
        history = PostgresHistoryStore(schema).read(text)
    return history, facts


def read_status_facts(
    url: str | None, schema: str, shape: str, *, purpose: str
) -> StatusFacts | None:
    """status_facts over a short libpq session of its own; None where libpq does not load: a
    question whose answer is only worth having fast is not worth psycopg's import."""
    from pgshift.db.readonly import LibpqSession

    reader = LibpqSession.open(url, purpose=purpose)
    if reader is None:
        return None
    with reader:
        return status_facts(reader, schema, shape)
