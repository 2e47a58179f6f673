"""History writes PREPAREd once per runner session, so the server stops planning them per migration.

Why: a migration's history write (db/store.py, applied_sql and its siblings) is one CTE that
inserts the applied row, clears progress, logs and checks the compare-and-set. Sent as text in
every migration's message, the server parsed and planned it each time: ~0.11-0.13 ms of the
~0.17 ms the write costs, on PostgreSQL 15 and 18 alike (bench/bench_history_write.py). PREPAREd
once on the runner's session and sent as `EXECUTE name(literals)`, it is planned once.

Why it is safe: the EXECUTE still travels inside the migration's one message and transaction, so
the write commits or rolls back with the statements exactly as the text did. A prepared statement
is session state: pgshift refuses transaction-mode poolers (the migration lock needs the session
too), and a pooler in session mode keeps it. A migration that runs `DEALLOCATE` or `DISCARD` itself
sends its write as text (DROPS_PREPARED). One that drops them where the parser cannot see it (a
function running `DEALLOCATE ALL`) makes the EXECUTE fail with SQLSTATE 26000 in a transaction
that then rolls back whole, and the executor runs that migration once more with the write as
text (db/execute.py), as it does after a lock timeout; that session then sends every later
write as text, so that whatever dropped it (a pooler that hands out another server session,
against pgshift's refusal of transaction-mode poolers) costs no other migration a second run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import psycopg

#: SQLSTATE of EXECUTE naming a statement the session does not have (invalid_sql_statement_name).
NOT_PREPARED = "26000"

#: Statements (pglast node names) that drop a session's prepared statements: `DEALLOCATE` and
#: `DISCARD ALL`. A migration with one sends its write as text and the session prepares again
#: after it, so that no write finds its statement gone and no migration runs a second time.
DROPS_PREPARED = frozenset({"DeallocateStmt", "DiscardStmt"})

#: The type of each write field that is not text: a parameter needs one, where the literal the
#: text form sends took the column's type from where it stands.
FIELD_TYPES = {
    "duration_ms": "bigint",
    "statements_done": "integer",
    "expected_done": "integer",
    "run_id": "uuid",
    "metadata": "jsonb",
    "detail": "jsonb",
}


class PreparedForm(NamedTuple):
    """One write template as a prepared statement: its name, its PREPARE, the order of its
    EXECUTE's arguments (each field once, however often the template uses it)."""

    name: bytes
    prepare: bytes
    fields: tuple[str, ...]


def prepared_form(pieces: Sequence[bytes | str]) -> PreparedForm:
    """``pieces`` (SQL bytes and field names, as db/store.py composes a template) as a
    PREPARE whose name is a digest of its text: one name can only ever mean one statement, so
    finding it already prepared on a session is finding this very statement."""
    fields: list[str] = []
    body: list[bytes] = []
    for piece in pieces:
        if isinstance(piece, bytes):
            body.append(piece)
            continue
        if piece not in fields:
            fields.append(piece)
        body.append(b"$%d" % (fields.index(piece) + 1))
    types = ", ".join(FIELD_TYPES.get(field, "text") for field in fields).encode()
    text = b"(" + types + b") AS " + b"".join(body)
    name = b"pgshift_write_" + hashlib.sha256(text).hexdigest()[:24].encode()
    return PreparedForm(name, b"PREPARE " + name + b" " + text, tuple(fields))


class PreparedWrites:
    """Which write forms are PREPAREd on one session (the runner's); one per executor."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self._names: set[bytes] = set()

    def ready(self, form: PreparedForm) -> bool:
        """PREPARE ``form`` on the session unless it is already; False when it cannot be now.

        Only between transactions: a PREPARE that failed inside one would abort it. A name
        the session already has (another executor on the same session prepared it) is the
        same statement, by its digest.
        """
        if form.name in self._names:
            return True
        import psycopg
        from psycopg import pq

        if self.conn.info.transaction_status != pq.TransactionStatus.IDLE:
            return False
        try:
            self.conn.execute(form.prepare)
        except psycopg.errors.DuplicatePreparedStatement:
            pass
        except psycopg.Error:
            return False
        self._names.add(form.name)
        return True

    def forget(self) -> None:
        """The session lost its prepared statements (DEALLOCATE ALL, DISCARD): prepare again."""
        self._names.clear()


def execute_sql(form: PreparedForm, literals: Sequence[bytes]) -> bytes:
    """`EXECUTE name(literal, ...)`: the write, as one statement of a simple-query message."""
    return b"EXECUTE " + form.name + b"(" + b", ".join(literals) + b")"
