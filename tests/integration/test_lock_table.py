"""The lock table (source/lock_table.py) against the locks PostgreSQL really takes.

Every example of every kind runs on each server the suite runs (15 and 18), against the same
fixture schema. A statement PostgreSQL runs in a transaction runs inside one (db/trace.py's
``observe``, rolled back afterwards so the fixture stays as it was): its backend's relation
locks are read from ``pg_locks`` before the end, each relation named as it was before the
statement, and the strongest mode per relation is compared with the table, for every relation
the table names (resolved through the catalog as `validate --trace` resolves them) and for any
other relation locked SHARE UPDATE EXCLUSIVE or stronger that is not an index or sequence of a
named relation locked at least as strongly.

A statement PostgreSQL refuses in a transaction (CONCURRENTLY, VACUUM) cannot be read that way:
it runs in a session of its own while a second session holds a lock or a snapshot it has to
wait for, and a third reads the relation locks it holds or waits for at that moment. That shows
the locks it takes up to its first wait, which for these statements are all they take.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from tests.plugins.pg import PgServer

from pgshift.db import trace as dbtrace
from pgshift.source import lock_table as lt
from pgshift.source import locks as lk

FIXTURE = """
CREATE SCHEMA other;
CREATE TABLE p (id int PRIMARY KEY);
CREATE TABLE t (id int PRIMARY KEY, a int, b text, c int);
CREATE INDEX t_a_idx ON t (a);
CREATE UNIQUE INDEX t_c_key ON t (c);
ALTER TABLE t ADD CONSTRAINT t_a_check CHECK (a > 0);
ALTER TABLE t ADD CONSTRAINT t_b_check CHECK (b <> '') NOT VALID;
CREATE TABLE c (id int PRIMARY KEY, p_id int CONSTRAINT c_p_fkey REFERENCES p (id), q_id int);
ALTER TABLE c ADD CONSTRAINT c_q_fkey FOREIGN KEY (q_id) REFERENCES p (id) NOT VALID;
CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER t_tr BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f();
CREATE POLICY t_pol ON t USING (true);
CREATE RULE t_rule AS ON INSERT TO t DO ALSO NOTHING;
CREATE VIEW v AS SELECT id, a FROM t;
CREATE MATERIALIZED VIEW mv AS SELECT id FROM t;
CREATE UNIQUE INDEX mv_id_idx ON mv (id);
CREATE SEQUENCE s;
CREATE TYPE mood AS ENUM ('a', 'b');
CREATE TYPE feeling AS ENUM ('x');
CREATE FUNCTION g() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;
CREATE DOMAIN email AS text;
CREATE TABLE u (id int, e email);
CREATE TABLE m (k int, x int) PARTITION BY RANGE (k);
CREATE TABLE m1 PARTITION OF m FOR VALUES FROM (0) TO (10);
CREATE TABLE m2 (k int, x int);
"""

#: What the second session holds so that a statement run alone waits (default: a snapshot
#: and ACCESS SHARE on the first relation it names).
_BLOCKERS = {
    "VACUUM": "LOCK TABLE t IN SHARE UPDATE EXCLUSIVE MODE",
    # Its waits for older transactions come after it let its locks go: make it wait for the
    # partition instead, once it holds the parent.
    "ALTER TABLE DETACH PARTITION CONCURRENTLY": "LOCK TABLE m1 IN SHARE UPDATE EXCLUSIVE MODE",
}

CASES = [
    pytest.param(fact, example, id=f"{fact.kind} | {example}")
    for fact in lt.LOCK_FACTS
    for example in fact.examples
]


@pytest.fixture(scope="module")
def fixture_url(pg_server: PgServer) -> Iterator[str]:
    """One database per server with the fixture schema; every transactional case rolls back."""
    name = f"locks_{uuid.uuid4().hex}"
    pg_server.create_database(name)
    url = pg_server.url(name)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(FIXTURE)
    yield url
    pg_server.drop_database(name)


def _check(
    fact: lt.LockFact,
    example: str,
    locks: tuple[dbtrace.HeldLock, ...],
    resolved: dict[lk.Ref, tuple[str, ...]],
    major: int,
) -> None:
    expected = lk.expected_locks(example)
    # Every role the table states unconditionally is found in the fixture: the comparison below
    # then checks a lock on a real relation, not on an empty lookup.
    for lock in expected:
        if not lock.when:
            assert resolved.get(lock.ref), f"{lock.ref} found nothing in the fixture"
    held: dict[str, str] = {}
    owners: dict[str, str | None] = {}
    for h in locks:
        name = f"{h.schema}.{h.relation}"
        held[name] = lk.strongest((held.get(name, lt.NONE), lk.sql_mode(h.mode)))
        owners[name] = h.owner
    problems = lk.compare(expected, resolved, held, owners, major)
    assert not problems, f"PostgreSQL {major}, {fact.kind}: {example}: {problems}"


@pytest.mark.parametrize(("fact", "example"), CASES)
def test_the_server_takes_the_locks_the_table_says(
    fact: lt.LockFact, example: str, pg_server: PgServer, request: pytest.FixtureRequest
) -> None:
    classified = lk.classify(example)
    assert classified is not None and [c.kind for c in classified] == [fact.kind]
    refs = [lock.ref for lock in lk.expected_locks(example)]
    if not fact.transactional:
        url = request.getfixturevalue("db_url")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(FIXTURE)
        locks, resolved = _sample_alone(url, fact, example, refs)
        _check(fact, example, locks, resolved, pg_server.major)
        return
    url = request.getfixturevalue("fixture_url")
    with psycopg.connect(url, autocommit=True) as conn:
        seen = dbtrace.observe(conn, example, transactional=True, refs=refs, commit=False)
    assert seen.error is None, seen.error
    _check(fact, example, seen.locks, dict(seen.resolved), pg_server.major)
    if fact.new_file is not None:
        tables = [r for ref, rs in seen.resolved.items() if ref.how == lk.NAMED for r in rs]
        assert bool(set(seen.rewritten) & set(tables)) is fact.new_file, seen.rewritten


def _sample_alone(
    url: str, fact: lt.LockFact, example: str, refs: list[lk.Ref]
) -> tuple[tuple[dbtrace.HeldLock, ...], dict[lk.Ref, tuple[str, ...]]]:
    """The locks ``example`` holds or waits for while a second session makes it wait."""
    with (
        psycopg.connect(url, autocommit=True) as watcher,
        psycopg.connect(url, autocommit=True) as blocker,
        psycopg.connect(url, autocommit=True) as runner,
    ):
        before = dbtrace.relations(watcher)
        found = dbtrace.resolve(watcher, refs)
        resolved = {r: tuple(before[o].name for o in oids) for r, oids in found.items()}
        blocker.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        blocker.execute(_BLOCKERS.get(fact.kind, "SELECT count(*) FROM t"))
        pid = runner.info.backend_pid
        failure: list[BaseException] = []

        def run() -> None:
            try:
                runner.execute(example)
            except BaseException as exc:  # reported by the test thread
                failure.append(exc)

        thread = threading.Thread(target=run)
        thread.start()
        try:
            _wait_until_waiting(watcher, pid)
            locks = dbtrace.held_locks(watcher, before, pid=pid)
        finally:
            blocker.execute("COMMIT")
            thread.join(30)
        assert not thread.is_alive() and failure == []
    return locks, resolved


def _wait_until_waiting(conn: psycopg.Connection[Any], pid: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        row = conn.execute(
            "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)
        ).fetchone()
        if row is not None and row[0] == "Lock":
            return
        time.sleep(0.02)
    pytest.fail(f"the statement never waited behind the blocking session (pid {pid})")
