"""The runner's pure decisions: how statements are grouped, resume checksums, backoff bounds."""

from __future__ import annotations

import random

from pgshift.model import Statement
from pgshift.ops.apply import Chunk, chunks_of, prefix_checksum
from pgshift.ops.backoff import backoff_ms


def stmt(index: int, transactional: bool = True) -> Statement:
    return Statement(index, f"SELECT {index}", index + 1, 1, "SelectStmt", transactional)


def test_consecutive_transactional_statements_share_a_chunk() -> None:
    statements = [stmt(0), stmt(1), stmt(2, False), stmt(3), stmt(4, False), stmt(5, False)]
    assert chunks_of(statements) == [
        Chunk(0, 2, True),
        Chunk(2, 3, False),
        Chunk(3, 4, True),
        Chunk(4, 5, False),
        Chunk(5, 6, False),
    ]


def test_transaction_false_gives_every_statement_its_own_chunk() -> None:
    """Each keeps its own transaction (with its progress record) where PostgreSQL allows one."""
    assert chunks_of([stmt(0), stmt(1), stmt(2, False)], transaction=False) == [
        Chunk(0, 1, True),
        Chunk(1, 2, True),
        Chunk(2, 3, False),
    ]


def test_empty_file_is_one_empty_transaction() -> None:
    assert chunks_of([]) == [Chunk(0, 0, True)]


def test_prefix_checksum_covers_only_the_done_statements() -> None:
    a = [stmt(0), stmt(1)]
    b = [stmt(0), Statement(1, "SELECT 'changed'", 2, 1, "SelectStmt", True)]
    assert prefix_checksum(a, 1) == prefix_checksum(b, 1)
    assert prefix_checksum(a, 2) != prefix_checksum(b, 2)


def test_backoff_is_jittered_within_bounds() -> None:
    rng = random.Random(7)
    values = [backoff_ms(attempt, 500, 10_000, rng) for attempt in range(1, 12)]
    assert all(1 <= v <= 10_000 for v in values)
    assert values[-1] >= 5000  # capped, not shrinking
    assert len({backoff_ms(3, 500, 10_000, rng) for _ in range(20)}) > 5  # jitter


def test_backoff_leaves_the_application_long_windows_between_attempts() -> None:
    """Each pause is at least two lock timeouts: attempts stall traffic < 1/3 of the time."""
    rng = random.Random(3)
    for attempt in range(1, 8):
        for _ in range(50):
            assert backoff_ms(attempt, 500, 10_000, rng) >= 1000


def test_backoff_honours_a_cap_below_the_first_pause() -> None:
    rng = random.Random(1)
    assert all(backoff_ms(1, 5000, 1000, rng) <= 20_000 for _ in range(20))
