"""The pause before retrying what concurrency refused: one formula for statements and batches.

The runner (ops/apply.py) retries a chunk, and the backfill loop (ops/backfill.py) a batch,
after a lock timeout, a deadlock or a serialization failure; both wait the same way, so that
the application's queries get the same long windows between attempts whichever one retries.
"""

from __future__ import annotations

import random

#: The first pause after a lock timeout is this many lock timeouts (then it doubles): behind a
#: long blocker the application's queries queue only while an attempt waits, so the pauses must
#: be long against the attempts for the application's total stall to stay small.
RETRY_PAUSE_FACTOR = 4
#: The shortest pause between attempts, in lock timeouts (backoff_ms draws from the upper half).
RETRY_PAUSE_FLOOR = 2


def backoff_ms(attempt: int, lock_timeout_ms: int, cap_ms: int, rng: random.Random) -> int:
    """The pause before retry ``attempt`` (1-based): jittered, growing, at least 2 lock timeouts.

    The ceiling starts at RETRY_PAUSE_FACTOR lock timeouts and doubles per attempt up to
    ``cap_ms``; the pause is drawn from its upper half, so many runners spread out while the
    application keeps long windows between attempts (bench/bench_lock_stall.py measures it).
    """
    first = RETRY_PAUSE_FACTOR * max(1, lock_timeout_ms)
    ceiling = min(max(cap_ms, first), first * (2 ** min(attempt - 1, 20)))
    return max(1, int(rng.uniform(ceiling / 2, ceiling)))
