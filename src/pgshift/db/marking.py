"""The history write of `pgshift mark`: one migration recorded as applied or not, by hand.

Why its own module: every other history write comes from a run that executed (or proved) the
migration; this one records a person's word after a manual repair, so it writes the same rows a
run would (the applied row with its checksums and rollback text, or their removal with any
progress) plus a ``mark`` event carrying who, where and why, in one transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pgshift.db.target import Target
    from pgshift.history import AppliedMigration

EVENT_MARK = "mark"


def record_mark(
    target: Target,
    version: str,
    run_id: str,
    row: AppliedMigration | None,
    detail: Mapping[str, Any],
) -> None:
    """Record ``version`` as applied (``row``: the row `up` would write, replacing any row
    there) or as not applied (``row`` None: the applied row, its progress and its backfill
    progress deleted), with the ``mark`` event, in one transaction; call under the runner lock.

    The applied or reverted event that `status` reads to tell a failure from a success is
    written too (its detail says it was marked), so a failed migration marked either way is no
    longer shown as failed.
    """
    conn = target.session
    store = target.store
    marked = {**detail, "marked": True}
    with conn.transaction():
        if row is not None:
            conn.execute(store._q("DELETE FROM {s}.applied WHERE version = %s"), (version,))
            conn.execute(store.applied_sql(conn, row, marked))
        else:
            conn.execute(store.reverted_sql(conn, version, run_id, marked))
        conn.execute(store._q("DELETE FROM {s}.backfill WHERE version = %s"), (version,))
        store.log(conn, run_id, EVENT_MARK, version, detail)
