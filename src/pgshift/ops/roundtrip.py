"""`validate --roundtrip`: prove each rollback on a scratch database, never on the target.

For every migration, in plan order: apply it, apply its rollback and check the schema is what
it was before, then apply it again and check the schema is what the first apply produced.
A broken step leaves the scratch database in an unknown state, so it is rebuilt from scratch
(every migration up to the current one) before going on: one bad rollback does not hide the
next one.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pgshift.db.fingerprint import Fingerprint, differences, fingerprint
from pgshift.errors import DatabaseUnavailable
from pgshift.lint.finding import Finding
from pgshift.model import Migration, Statement

if TYPE_CHECKING:
    import psycopg

MAX_DIFF_LINES = 8


@dataclass(frozen=True)
class _Failure:
    statement: Statement | None
    error: str


class _Scratch:
    """A throw-away database on the scratch server, dropped at the end whatever happens."""

    def __init__(self, server_url: str, statement_timeout_ms: int) -> None:
        from psycopg.conninfo import make_conninfo

        self.server_url = server_url
        self.name = f"pgshift_roundtrip_{uuid.uuid4().hex[:12]}"
        self.url = make_conninfo(server_url, dbname=self.name)
        self.timeout_ms = statement_timeout_ms
        self.conn: psycopg.Connection[Any] | None = None

    def _admin(self) -> psycopg.Connection[Any]:
        from pgshift.db.connect import connect

        return connect(self.server_url, purpose="roundtrip admin")

    def create(self) -> psycopg.Connection[Any]:
        from psycopg import sql

        from pgshift.db.connect import connect

        self.drop()
        with self._admin() as admin:
            admin.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(self.name))
            )
        self.conn = connect(self.url, purpose="roundtrip")
        self.conn.execute(
            "SELECT set_config('statement_timeout', %s, false)", (f"{self.timeout_ms}ms",)
        )
        return self.conn

    def drop(self) -> None:
        import psycopg
        from psycopg import sql

        if self.conn is not None:
            self.conn.close()
            self.conn = None
        try:
            with self._admin() as admin:
                force = sql.SQL(" WITH (FORCE)") if admin.info.server_version >= 130000 else None
                admin.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {}{}").format(
                        sql.Identifier(self.name), force or sql.SQL("")
                    )
                )
        except (psycopg.Error, DatabaseUnavailable):
            pass  # best effort: the name is unique, a leftover harms nobody


@contextmanager
def _scratch(server_url: str, timeout_ms: int) -> Iterator[_Scratch]:
    scratch = _Scratch(server_url, timeout_ms)
    try:
        yield scratch
    finally:
        scratch.drop()


def _run(
    conn: psycopg.Connection[Any], statements: Sequence[Statement], in_transaction: bool
) -> _Failure | None:
    """Run statements as `up` would: consecutive transactional ones together, others alone."""
    import psycopg

    i = 0
    while i < len(statements):
        group = [statements[i]]
        if in_transaction and statements[i].transactional:
            while i + len(group) < len(statements) and statements[i + len(group)].transactional:
                group.append(statements[i + len(group)])
        i += len(group)
        current: Statement | None = None
        try:
            if len(group) == 1 and not (in_transaction and group[0].transactional):
                current = group[0]
                conn.execute(current.sql.encode())
            else:
                with conn.transaction():
                    for current in group:
                        conn.execute(current.sql.encode())
        except psycopg.Error as exc:
            message = (exc.diag.message_primary or str(exc)).strip()
            return _Failure(current, message)
    return None


def _apply(conn: psycopg.Connection[Any], m: Migration) -> _Failure | None:
    return _run(conn, m.statements, m.header.transaction)


def _revert(conn: psycopg.Connection[Any], m: Migration) -> _Failure | None:
    assert m.rollback is not None
    return _run(conn, m.rollback.statements, m.rollback.header.transaction)


def _finding(
    code: str, file: str, statement: Statement | None, message: str, help_: str
) -> Finding:
    line, column = (statement.line, statement.column) if statement else (1, 1)
    return Finding(code, "error", file, line, column, message, help_)


def _diff_text(expected: Fingerprint, actual: Fingerprint) -> str:
    lines = differences(expected, actual)
    shown = "; ".join(lines[:MAX_DIFF_LINES])
    if len(lines) > MAX_DIFF_LINES:
        shown += f"; and {len(lines) - MAX_DIFF_LINES} more"
    return shown


def roundtrip(
    migrations: Sequence[Migration],
    server_url: str,
    *,
    skip_schemas: Sequence[str] = ("pgshift",),
    bad_files: Collection[str] = (),
    statement_timeout_ms: int = 300_000,
) -> list[Finding]:
    """Findings for every migration whose rollback fails, leaves objects, or differs."""
    findings: list[Finding] = []
    with _scratch(server_url, statement_timeout_ms) as scratch:
        conn = scratch.create()
        before = fingerprint(conn, skip_schemas)
        for position, m in enumerate(migrations):
            forward = str(m.path)
            if forward in bad_files:
                findings.append(
                    _finding(
                        "apply-failed",
                        forward,
                        None,
                        "round trip stopped here: this file has errors (see invalid-file), so it"
                        " and the migrations after it were not tried",
                        "fix the file, then run validate --roundtrip again",
                    )
                )
                break
            failure = _apply(conn, m)
            if failure is not None:
                findings.append(
                    _finding(
                        "apply-failed",
                        forward,
                        failure.statement,
                        f"the migration fails on an empty scratch database: {failure.error};"
                        " the migrations after it were not tried",
                        "fix the migration: it fails the same way on any new database",
                    )
                )
                break
            after = fingerprint(conn, skip_schemas)
            if m.rollback is None:  # missing-rollback says so already
                before = after
                continue
            backward = str(m.rollback.path)
            problem = _check_rollback(conn, m, backward, before, after, skip_schemas, bad_files)
            if problem is None:
                before = after
                continue
            findings.append(problem)
            # Unknown state: rebuild the scratch database up to and including this migration.
            conn = scratch.create()
            for earlier in migrations[: position + 1]:
                if _apply(conn, earlier) is not None:
                    return findings  # cannot rebuild; what was found stands
            before = fingerprint(conn, skip_schemas)
    return findings


def _check_rollback(
    conn: psycopg.Connection[Any],
    m: Migration,
    backward: str,
    before: Fingerprint,
    after: Fingerprint,
    skip_schemas: Sequence[str],
    bad_files: Collection[str],
) -> Finding | None:
    """Revert, compare with ``before``, re-apply, compare with ``after``; the first problem."""
    if backward in bad_files:
        return _finding(
            "rollback-failed",
            backward,
            None,
            "the rollback was not tried: the file has errors (see invalid-file)",
            "fix the rollback file",
        )
    failure = _revert(conn, m)
    if failure is not None:
        return _finding(
            "rollback-failed",
            backward,
            failure.statement,
            f"the rollback fails right after its migration was applied: {failure.error}",
            "fix the rollback SQL; try it with `pgshift rollback dry-run --simulate`",
        )
    reverted = fingerprint(conn, skip_schemas)
    if reverted != before:
        return _finding(
            "rollback-incomplete",
            backward,
            None,
            "after the rollback the schema is not what it was before the migration: "
            + _diff_text(before, reverted),
            "undo every object the migration creates or changes, newest first",
        )
    failure = _apply(conn, m)
    if failure is not None:
        return _finding(
            "reapply-mismatch",
            str(m.path),
            failure.statement,
            f"applying the migration again after its rollback fails: {failure.error}",
            "the rollback leaves something the migration does not expect; undo it completely",
        )
    again = fingerprint(conn, skip_schemas)
    if again != after:
        return _finding(
            "reapply-mismatch",
            str(m.path),
            None,
            "applying the migration again after its rollback gives another schema: "
            + _diff_text(after, again),
            "make the rollback restore exactly the state the migration starts from",
        )
    return None
