"""One suite, two executors: the PostgreSQL executor and the scripted one keep one contract.

The contract is the one written on pgshift.execution.Executor. The runner's decision tests
(tests/unit/test_apply_decisions.py) stand on the scripted executor of tests/plugins/memory.py,
so what they prove holds on a server only as far as the fake answers like the real one: every
test here runs on both, and the real one on each server of the session.

How a test looks at an executor without knowing which one it is: statements insert a tag into
a table (``effects``), and ``Side.remaining`` says which tags stayed committed (on the server,
the table's rows; in the fake, the statements it reports committed). A statement the server
refuses is real SQL that fails on PostgreSQL, and the fake is told the same answer
(``Side.refuse``); for the fake that part is scripted, for the real executor it is what the
server says, so it is the real one those assertions hold to account.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest

from pgshift.db.target import Target
from pgshift.execution import (
    LOCK_NOT_AVAILABLE,
    PROGRESS_MOVED,
    Executor,
    HistoryWrite,
    IndexFacts,
    RecordApplied,
    RecordProgress,
    RecordReverted,
    ServerError,
    StatementFailed,
)
from pgshift.history import AppliedMigration, Expect, History, HistoryStore, Progress
from pgshift.model import Statement
from pgshift.source.sql import split_statements
from tests.plugins.memory import MemoryTarget, ScriptedExecutor
from tests.plugins.pg import PgServer

A = "20250101000000"
RUN = "7d4c2a1e-0000-4000-8000-000000000001"
LOCK_MS, STATEMENT_MS = 2_000, 30_000

NOWHERE = "INSERT INTO nowhere VALUES (1)"
#: What PostgreSQL answers to NOWHERE: the position points at the table's name.
NOWHERE_ERROR = ServerError("42P01", 'relation "nowhere" does not exist', offset=12)
INDEX = "CREATE INDEX CONCURRENTLY effects_tag_idx ON effects (tag)"
UNIQUE = "CREATE UNIQUE INDEX CONCURRENTLY effects_tag_key ON effects (tag)"
UNIQUE_ERROR = ServerError("23505", 'could not create unique index "effects_tag_key"')


def insert(tag: str) -> str:
    return f"INSERT INTO effects (tag) VALUES ('{tag}')"


def statements(*sqls: str) -> tuple[Statement, ...]:
    """The statements of a file holding ``sqls``, parsed as the loader parses them."""
    parsed, problems = split_statements("".join(f"{s};\n" for s in sqls), "contract.sql")
    assert problems == []
    return parsed


def applied(version: str = A) -> RecordApplied:
    row = AppliedMigration(
        version=version,
        description="contract",
        checksum="c" * 64,
        rollback_checksum=None,
        applied_at=None,  # type: ignore[arg-type]  # the store's clock
        duration_ms=1,
        applied_by="tester",
        host="box",
        run_id=RUN,
        metadata={},
    )
    return RecordApplied(row, Expect())


def progress(done: int, expect: Expect | None) -> RecordProgress:
    moved = Progress(A, "c" * 64, "p" * 64, done, RUN, None, "apply")  # type: ignore[arg-type]
    return RecordProgress(moved, expect)


@dataclass
class Side:
    """One executor, its history store and session, and how a test sees their effects."""

    name: str
    executor: Executor
    store: HistoryStore
    session: Any
    fake: ScriptedExecutor | None = None
    url: str = ""
    tags: dict[str, str] = field(default_factory=dict)

    def history(self) -> History:
        return self.store.read(self.session)

    def remaining(self) -> list[str]:
        """The tags whose insert stayed committed, in order."""
        if self.fake is not None:
            return [self.tags[s] for s in self.fake.committed if s in self.tags]
        rows = self.session.execute("SELECT tag FROM effects ORDER BY n").fetchall()
        return [str(r[0]) for r in rows]

    def refuse(self, sql: str, error: ServerError) -> None:
        """The server refuses ``sql`` with ``error``: told to the fake, true of PostgreSQL."""
        if self.fake is not None:
            self.fake.answer(sql, error)

    @contextlib.contextmanager
    def table_locked(self, sql: str) -> Iterator[None]:
        """Another session holds ``effects`` locked while ``sql`` asks for it."""
        if self.fake is not None:
            self.fake.answer(sql, ServerError(LOCK_NOT_AVAILABLE, "lock timeout"))
            yield
            return
        with psycopg.connect(self.url) as other, other.transaction():
            other.execute("LOCK TABLE effects IN ACCESS EXCLUSIVE MODE")
            yield


@pytest.fixture(params=["memory", "postgres"])
def side(request: pytest.FixtureRequest, pg_server: PgServer) -> Iterator[Side]:
    """Each executor; the fake runs beside each server too (it is cheap)."""
    tags = {insert(t): t for t in "abcxyz"}
    if request.param == "memory":
        target = MemoryTarget()
        scripted = target.executor()
        yield Side("memory", scripted, target.store, None, scripted, tags=tags)
        return
    url = request.getfixturevalue("db_url")
    with Target(url) as real:
        real.prepare()
        real.session.execute("CREATE TABLE effects (n serial PRIMARY KEY, tag text)")
        yield Side("postgres", real.executor(), real.store, real.session, url=url, tags=tags)


def transaction(side: Side, sqls: tuple[str, ...], write: HistoryWrite) -> None:
    side.executor.run_transaction(
        statements(*sqls),
        write,
        version=A,
        lock_timeout_ms=LOCK_MS,
        statement_timeout_ms=STATEMENT_MS,
    )


def alone(side: Side, sql: str, write: HistoryWrite, *, skip: bool = False) -> None:
    (statement,) = statements(sql)
    side.executor.run_alone(
        statement,
        write,
        version=A,
        skip=skip,
        lock_timeout_ms=LOCK_MS,
        statement_timeout_ms=STATEMENT_MS,
    )


def progress_done(side: Side) -> int | None:
    found = side.history().progress_of(A)
    return None if found is None else found.statements_done


# -- run_transaction ---------------------------------------------------------------------------


def test_a_transaction_commits_its_statements_and_its_write_together(side: Side) -> None:
    transaction(side, (insert("a"), insert("b")), applied())
    assert side.remaining() == ["a", "b"]
    assert [row.version for row in side.history().applied] == [A]


def test_a_refused_statement_is_named_and_nothing_of_its_transaction_remains(side: Side) -> None:
    side.refuse(NOWHERE, NOWHERE_ERROR)
    with pytest.raises(StatementFailed) as refused:
        transaction(side, (insert("a"), NOWHERE, insert("b")), progress(3, Expect()))
    failed = refused.value
    assert failed.statement is not None and failed.statement.index == 1
    assert failed.statement.sql == NOWHERE
    assert failed.error == NOWHERE_ERROR
    assert side.remaining() == []
    assert progress_done(side) is None
    # The session is usable again: the next transaction commits.
    transaction(side, (insert("x"),), progress(1, Expect()))
    assert side.remaining() == ["x"] and progress_done(side) == 1


@pytest.mark.parametrize(
    "expect",
    [Expect(), Expect("apply", 2), Expect("revert", 1)],
    ids=["no-row-expected", "further-on", "other-action"],
)
def test_a_compare_and_set_write_that_no_longer_holds_is_refused_with_nothing_left(
    side: Side, expect: Expect
) -> None:
    transaction(side, (insert("a"),), progress(1, None))  # the progress another run left
    with pytest.raises(StatementFailed) as refused:
        transaction(side, (insert("b"), insert("c")), progress(3, expect))
    assert refused.value.error.sqlstate == PROGRESS_MOVED
    assert refused.value.statement is None  # the write was refused, not a statement
    assert side.remaining() == ["a"]
    assert progress_done(side) == 1


def test_each_history_write_is_compared_before_it_is_set(side: Side) -> None:
    transaction(side, (insert("a"),), progress(1, Expect()))
    transaction(side, (insert("b"),), progress(2, Expect("apply", 1)))  # holds: moves it
    assert progress_done(side) == 2
    stale = RecordApplied(applied().row, Expect("apply", 1))
    with pytest.raises(StatementFailed) as refused:
        transaction(side, (insert("c"),), stale)
    assert refused.value.error.sqlstate == PROGRESS_MOVED
    transaction(side, (insert("c"),), RecordApplied(applied().row, Expect("apply", 2)))
    history = side.history()
    assert [row.version for row in history.applied] == [A] and history.in_progress == ()
    assert side.remaining() == ["a", "b", "c"]


def test_a_revert_whose_row_is_gone_is_refused(side: Side) -> None:
    transaction(side, (insert("a"),), applied())
    revert = RecordReverted(A, RUN, 1, {}, Expect())
    transaction(side, (insert("b"),), revert)
    assert side.history().applied == ()
    with pytest.raises(StatementFailed) as refused:  # another run reverted it meanwhile
        transaction(side, (insert("c"),), revert)
    assert refused.value.error.sqlstate == PROGRESS_MOVED
    assert side.remaining() == ["a", "b"]


def test_a_lock_timeout_refuses_the_statement_and_leaves_nothing(side: Side) -> None:
    with side.table_locked(insert("a")), pytest.raises(StatementFailed) as refused:
        side.executor.run_transaction(
            statements(insert("a"), insert("b")),
            progress(2, Expect()),
            version=A,
            lock_timeout_ms=50,
            statement_timeout_ms=STATEMENT_MS,
        )
    assert refused.value.error.sqlstate == LOCK_NOT_AVAILABLE
    # The first statement asks for the table's lock: it is the one refused.
    assert refused.value.statement is not None and refused.value.statement.index == 0
    assert side.remaining() == [] and progress_done(side) is None


# -- run_alone ---------------------------------------------------------------------------------


def test_run_alone_commits_the_statement_before_its_write(side: Side) -> None:
    transaction(side, (insert("a"),), progress(1, Expect()))
    with pytest.raises(StatementFailed) as refused:
        alone(side, insert("b"), progress(2, Expect("apply", 5)))
    assert refused.value.error.sqlstate == PROGRESS_MOVED
    # The statement ran, outside any transaction, and stays: only the write was refused. The
    # refusal names the statement the write would have counted.
    assert refused.value.statement is not None and refused.value.statement.sql == insert("b")
    assert side.remaining() == ["a", "b"]
    assert progress_done(side) == 1


def test_run_alone_records_after_the_statement(side: Side) -> None:
    alone(side, insert("a"), progress(1, Expect()))
    assert side.remaining() == ["a"] and progress_done(side) == 1
    alone(side, insert("b"), RecordApplied(applied().row, Expect("apply", 1)))
    assert side.remaining() == ["a", "b"]
    history = side.history()
    assert [row.version for row in history.applied] == [A] and history.in_progress == ()


def test_a_refused_statement_run_alone_is_named_and_records_nothing(side: Side) -> None:
    side.refuse(NOWHERE, NOWHERE_ERROR)
    with pytest.raises(StatementFailed) as refused:
        alone(side, NOWHERE, progress(1, Expect()))
    assert refused.value.statement is not None and refused.value.statement.sql == NOWHERE
    assert refused.value.error == NOWHERE_ERROR
    assert progress_done(side) is None


def test_a_skipped_statement_is_not_sent_and_its_write_is(side: Side) -> None:
    alone(side, insert("a"), progress(1, Expect()), skip=True)
    assert side.remaining() == []
    assert progress_done(side) == 1


# -- the catalog: find_index and drop_index ----------------------------------------------------


def test_a_concurrent_build_is_found_valid_and_dropped(side: Side) -> None:
    assert side.executor.find_index(None, "effects_tag_idx") is None
    alone(side, INDEX, progress(1, Expect()))
    built = IndexFacts("public", "effects_tag_idx", True)
    assert side.executor.find_index(None, "effects_tag_idx") == built
    assert side.executor.find_index("public", "effects_tag_idx") == built
    assert side.executor.find_index("elsewhere", "effects_tag_idx") is None
    side.executor.drop_index(built)
    assert side.executor.find_index(None, "effects_tag_idx") is None
    side.executor.drop_index(built)  # dropping what is gone is no error


def test_a_concurrent_drop_removes_the_index(side: Side) -> None:
    alone(side, INDEX, progress(1, Expect()))
    alone(side, "DROP INDEX CONCURRENTLY effects_tag_idx", progress(2, Expect("apply", 1)))
    assert side.executor.find_index(None, "effects_tag_idx") is None


def test_a_failed_unique_build_leaves_an_invalid_index(side: Side) -> None:
    transaction(side, (insert("x"), insert("x")), progress(2, Expect()))
    side.refuse(UNIQUE, UNIQUE_ERROR)
    with pytest.raises(StatementFailed) as refused:
        alone(side, UNIQUE, progress(3, Expect("apply", 2)))
    assert refused.value.error.sqlstate == "23505"
    assert progress_done(side) == 2
    left = side.executor.find_index(None, "effects_tag_key")
    assert left == IndexFacts("public", "effects_tag_key", False)
    side.executor.drop_index(left)
    assert side.executor.find_index(None, "effects_tag_key") is None


def test_the_session_has_a_server_pid(side: Side) -> None:
    assert side.executor.backend_pid() > 0
