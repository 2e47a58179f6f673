"""Immutable values that describe migration files and database objects: every layer's vocabulary."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RISK_LEVELS = ("low", "medium", "high")


@dataclass(frozen=True, slots=True)
class HeaderField:
    """One `-- Key: value` or `-- @key: value` line, kept with its line for error messages."""

    key: str  # as written, lower-cased, without "@" (e.g. "migration", "zero-downtime")
    value: str
    line: int
    is_annotation: bool  # True for "@key" lines


@dataclass(frozen=True, slots=True)
class Header:
    """The parsed metadata block at the top of a migration or rollback file."""

    fields: tuple[HeaderField, ...] = ()
    migration: str | None = None  # "-- Migration:" (or "-- Rollback:" in a rollback file)
    description: str | None = None
    created: str | None = None
    version: str | None = None
    zero_downtime: bool | None = None
    estimated_duration_ms: int | None = None
    risk_level: str | None = None
    dependencies: tuple[str, ...] = ()  # as written: versions or version_description names
    transaction: bool = True  # @transaction: false forces every statement outside a transaction
    lock_timeout_ms: int | None = None
    statement_timeout_ms: int | None = None
    lint_ignore: tuple[str, ...] = ()
    # `@kind: backfill` (SPEC 14): the one data statement runs in key-range batches.
    kind: str | None = None
    batch_key: tuple[str, ...] = ()  # `@batch-key`: the key columns, instead of the primary key
    batch_size: int | None = None  # `@batch-size`: rows of the first batch (then adapted)
    batch_pause_ms: int | None = None  # `@batch-pause`: a pause between batches
    # `@expand-contract: true`: `up` applies the expand phase, `pgshift contract` the rest.
    expand_contract: bool = False
    expand_down: str | None = None  # `@expand-down`: the new column's value in the old type
    unknown: tuple[HeaderField, ...] = ()  # @keys pgshift does not know; validate warns

    def line_of(self, key: str) -> int:
        """Line of the first field named ``key`` (without "@"), or 1 when absent."""
        for f in self.fields:
            if f.key == key:
                return f.line
        return 1

    def metadata(self) -> dict[str, str]:
        """Every @annotation as written, for the history table."""
        return {f.key: f.value for f in self.fields if f.is_annotation}


#: The kind (Statement.kind) of an expansion's copy of the rows: not a parser node, an UPDATE
#: over the whole table that the runner hands to the backfill engine (rewrite/expand_model.py).
BACKFILL_KIND = "Backfill"


@dataclass(frozen=True, slots=True)
class Statement:
    """One SQL statement of a file with its position, classified by the real PostgreSQL parser."""

    index: int  # 0-based position in the file
    sql: str  # the statement's text, without the trailing semicolon
    line: int  # 1-based line in the file where the statement starts
    column: int  # 1-based column
    kind: str  # pglast node name, e.g. "CreateStmt", "IndexStmt"
    transactional: bool  # False: PostgreSQL refuses it inside a transaction block
    transaction_control: bool = False  # BEGIN/COMMIT/ROLLBACK/SAVEPOINT...: an error in a file
    # For CREATE INDEX CONCURRENTLY / DROP INDEX CONCURRENTLY: the (schema or None, name) of the
    # index, so a resumed run can tell a finished build from an INVALID leftover.
    concurrent_index: tuple[str | None, str] | None = None
    ignore: tuple[str, ...] = ()  # rule codes from a "-- pgshift-ignore:" comment just before
    # The parser's tree of this statement, {"NodeKind": {...fields}} as libpg_query's JSON, so
    # the linter reuses the one parse instead of parsing every file again.
    tree: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)
    # For a statement pre-flight reads only for its table (CREATE TABLE, a plain CREATE INDEX,
    # a row change): (schema or None, table, inh, relpersistence, if_not_exists) from its tree,
    # kept in the statements memo so pre-flight need not parse it (rewrite/preflight_head.py).
    table_head: tuple[str | None, str, bool, str, bool] | None = field(
        default=None, compare=False, repr=False
    )


@dataclass(frozen=True, slots=True)
class RollbackScript:
    """The `_rollback.sql` file paired with a migration."""

    path: Path
    text: str
    checksum: str  # of the parsed statements, as Migration.checksum
    header: Header
    statements: tuple[Statement, ...]
    text_checksum: str = ""  # sha256 of the LF-normalised text: what older pgshift stored


@dataclass(frozen=True, slots=True)
class Migration:
    """A forward migration file, its parsed header and statements, and its rollback."""

    version: str  # the 14 digits
    description: str  # lower_snake words from the file name
    path: Path
    text: str
    # Over the parsed statements (source/sql.py split_and_checksum): comments, header metadata,
    # whitespace, CRLF and a BOM do not change it, so annotating an applied file is not drift.
    # A file that does not parse has its text_checksum here (it can never be applied anyway).
    checksum: str
    header: Header
    statements: tuple[Statement, ...]
    rollback: RollbackScript | None
    dependencies: tuple[str, ...] = field(default=())  # resolved versions
    # sha256 of the text with CRLF normalised to LF: the checksum pgshift stored before it
    # checksummed statements, so history written then is recognised and upgraded (plan.py).
    text_checksum: str = ""

    @property
    def name(self) -> str:
        return f"{self.version}_{self.description}"

    @property
    def transactional(self) -> bool:
        """True when the whole file can run in one transaction."""
        return self.header.transaction and all(s.transactional for s in self.statements)


@dataclass(frozen=True, order=True)
class SchemaObject:
    """One top-level object of a database, as the backup inventory query names it.

    It lives here rather than beside the manifest because both ``db/`` (which reads objects
    from the catalog) and the pure manifest code (which stores and compares them) speak it.
    ``shape`` summarises what the object looks like (columns, index definition, ...), so two
    inventories can tell "same name, different definition" apart; ``drop`` is the statement that
    removes it, quoted by the server.
    """

    kind: str
    identity: str
    shape: str
    drop: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return self.kind, self.identity


# -- catalog facts: what db/catalog.py reads and the health rules judge ------------------------


@dataclass(frozen=True)
class InvalidIndex:
    schema: str
    name: str
    table: str
    definition: str


@dataclass(frozen=True)
class SessionInfo:
    """One backend as `pg_stat_activity` shows it; ages are in ms, None when not applicable.

    ``query`` is the whole text the server kept (up to track_activity_query_size), data
    literals included: a report masks its constants and shortens it (ops/health.shown_query).
    """

    pid: int
    application_name: str
    user: str
    state: str
    query: str
    xact_ms: int | None
    state_ms: int | None


@dataclass(frozen=True)
class BlockedSession:
    """A session waiting for a lock, what it waits on, since when, and who is in its way."""

    session: SessionInfo
    waiting_ms: int
    locktype: str
    relation: str | None  # the table (or index) waited on, when the lock is on a relation
    mode: str
    blocked_by: tuple[int, ...]  # pg_blocking_pids: holders and sessions queued ahead


@dataclass(frozen=True)
class ConnectionUse:
    used: int  # client backends, all databases: they share max_connections
    max_connections: int
    reserved: int  # superuser_reserved_connections (+ reserved_connections on 16+)

    @property
    def available(self) -> int:
        return max(0, self.max_connections - self.reserved)


@dataclass(frozen=True)
class LockState:
    """Who holds the migration lock, for how long, and whether any pgshift worker is around."""

    holder: SessionInfo
    held_ms: int  # since the holder connected: the lock connection is opened to take it
    workers: int  # other pgshift sessions that do work (runner, rollback ...), not read-only ones


@dataclass(frozen=True)
class Replica:
    name: str
    state: str
    lag_ms: int | None  # replay lag; None when the server does not say (no pg_monitor role)


@dataclass(frozen=True)
class PoolerProbe:
    """What a connection saw across separate transactions; a pooler in between shows here."""

    announced_pid: int  # the pid in the startup reply (a pooler announces its own)
    server_pids: tuple[int, ...]  # pg_backend_pid() in successive autocommit statements
    setting_kept: bool  # a session-level set_config survived into the next transaction


@dataclass(frozen=True)
class ColumnFacts:
    """A column as the catalog has it, for deriving the expand and contract of a change."""

    name: str
    type: str  # format_type(): "integer", "character varying(20)", "numeric(10,2)[]"
    not_null: bool
    default: str | None  # pg_get_expr() of its default
    identity: str = ""  # pg_attribute.attidentity: "a" (ALWAYS), "d" (BY DEFAULT), "" (none)
    generated: bool = False
    comment: str | None = None
    sequence: str | None = None  # the sequence it owns (serial), qualified as the server prints
    grants: tuple[tuple[str, str], ...] = ()  # column privileges: (grantee, privilege)


@dataclass(frozen=True)
class TableIndex:
    """An index of a table: its definition as pg_get_indexdef prints it, the columns it reads."""

    name: str
    definition: str
    columns: tuple[str, ...]
    constraint: str | None = None  # the UNIQUE or PRIMARY KEY constraint it backs
    primary: bool = False


@dataclass(frozen=True)
class TableConstraint:
    """A CHECK or FOREIGN KEY constraint of a table, as pg_get_constraintdef prints it."""

    name: str
    kind: str  # "c" check, "f" foreign key (pg_constraint.contype)
    definition: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class Reference:
    """A foreign key of another table that points at this one."""

    name: str
    table: str  # the referencing table, as regclass prints it (quoted and qualified as needed)
    columns: tuple[str, ...]  # the columns of this table it references
    definition: str  # pg_get_constraintdef()


@dataclass(frozen=True)
class TableFacts:
    """What expand and contract need to know of one table; pgshift's own artifacts left out.

    ``referenced`` are foreign keys of other tables that point at this one; ``views`` the
    views that read it, with the columns they read.
    """

    schema: str
    name: str
    columns: tuple[ColumnFacts, ...]
    key: tuple[str, ...]  # the primary key's columns
    indexes: tuple[TableIndex, ...] = ()
    constraints: tuple[TableConstraint, ...] = ()
    referenced: tuple[Reference, ...] = ()
    views: tuple[tuple[str, tuple[str, ...]], ...] = ()
    grants: tuple[tuple[str, str], ...] = ()  # (grantee, privilege) on the table
    triggers: tuple[str, ...] = ()  # pgshift's sync triggers on it: expansions under way
    partitioned: bool = False  # a partitioned table (its indexes cannot be built CONCURRENTLY)

    def column(self, name: str) -> ColumnFacts | None:
        return next((c for c in self.columns if c.name == name), None)
