"""Pre-flight of pending statements on a target: the checks their data implies, run read-only.

The composition, once: the pure layer names the tables (rewrite/preflight.py), the target's
catalog answers for them (db/preflight.py), the pure layer derives each statement's check from
its parse tree and those facts, and db/ runs the checks read-only on the target's session.
Expected durations come from the same facts, without a query of their own. Nothing is locked
beyond ACCESS SHARE and nothing is written, so planning may call this before the backup and
before the runner lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pgshift.db.preflight import read_facts, run_checks
from pgshift.errors import UsageError
from pgshift.rewrite.preflight import (
    Pending,
    derive_checks,
    duration_results,
    referenced_tables,
    tables_needed,
)
from pgshift.rewrite.preflight_light import FAIL, PreflightResult

if TYPE_CHECKING:
    from pgshift.db.target import Target
    from pgshift.model import Migration, Statement

#: PGSHIFT_PREFLIGHT_TIMEOUT's default, for a Target opened without settings.
DEFAULT_TIMEOUT_MS = 30_000


def preflight(
    statements_or_migrations: Sequence[Migration | Statement | str],
    target: Target,
    *,
    timeout_ms: int | None = None,
) -> list[PreflightResult]:
    """The pre-flight results of the pending statements, in the order they would run.

    ``statements_or_migrations`` are the pending migrations (in plan order), statements, or SQL
    text. Each check reports pass, fail or not-checked (with the reason); each rewrite,
    validating scan and index build also gets an "expected-duration" result, and a migration
    whose total is over 3x its @estimated-duration a "warn" one. ``timeout_ms`` bounds each
    check (default: the target's PGSHIFT_PREFLIGHT_TIMEOUT, else 30 s).
    """
    return preflight_pending(pending_of(statements_or_migrations), target, timeout_ms=timeout_ms)


def preflight_pending(
    pending: Sequence[Pending], target: Target, *, timeout_ms: int | None = None
) -> list[PreflightResult]:
    """preflight() of statements already made Pending: a fleet builds them once for all its
    targets (ops/planning.SharedPlanner), so each statement's trees are built once, not per
    target; the facts, checks and durations stay each target's own."""
    if not pending:
        return []
    facts = read_facts(target.session, tables_needed(pending))
    more = referenced_tables(pending, facts)
    if more:
        facts = facts.plus(read_facts(target.session, more))
    checks = derive_checks(pending, facts)
    results = run_checks(target.session, checks, timeout_ms=_timeout(target, timeout_ms))
    results += duration_results(pending, facts)
    order = {(p.file, p.line): n for n, p in enumerate(pending)}
    return sorted(results, key=lambda r: order.get((r.file, r.line), len(order)))


def failures(results: Sequence[PreflightResult]) -> list[PreflightResult]:
    """The results that predict a failure: what makes `up` refuse before anything is taken."""
    return [r for r in results if r.status == FAIL]


def _timeout(target: Target, timeout_ms: int | None) -> int:
    if timeout_ms is not None:
        return timeout_ms
    try:
        return target.settings.runner.preflight_timeout_ms
    except UsageError:  # a Target opened without settings (a library user's own)
        return DEFAULT_TIMEOUT_MS


def pending_of(items: Sequence[Migration | Statement | str]) -> list[Pending]:
    """Pending statements from migrations (their files, in order), statements or SQL text."""
    from pgshift.model import Migration, Statement
    from pgshift.source.sql import split_statements

    out: list[Pending] = []
    for number, item in enumerate(items, 1):
        if isinstance(item, Migration):
            est = item.header.estimated_duration_ms
            path = str(item.path)
            out += [
                Pending(path, s.line, s.sql, item.name, est, s.kind, s.tree, s.table_head)
                for s in item.statements
            ]
        elif isinstance(item, Statement):
            out.append(
                Pending(
                    "<sql>", item.line, item.sql, "", None, item.kind, item.tree, item.table_head
                )
            )
        else:
            name = f"<sql {number}>"
            statements, _problems = split_statements(item, name)
            out += [
                Pending(name, s.line, s.sql, name, None, s.kind, s.tree, s.table_head)
                for s in statements
            ]
    return out
