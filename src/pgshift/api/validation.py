"""Checking a project without changing a database: validate (a skin over ops/validation.py),
its ValidateReport, and explain.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pgshift.config import Settings
from pgshift.ops.validation import ValidateReport

if TYPE_CHECKING:
    from pgshift.events import Emit

__all__ = ["ValidateReport", "explain", "validate"]


def validate(
    settings: Settings,
    *,
    strict: bool = False,
    pg_major: int | None = None,
    roundtrip: bool = False,
    scratch_url: str | None = None,
    trace: bool = False,
    fixes: bool = True,
    since: str | None = None,
    on_event: Emit | None = None,
) -> ValidateReport:
    """Check every file and lint its SQL; with a database configured, also checksum drift.

    Never uses the embedded server to check drift (a linter must not depend on whether a
    server happens to run, nor boot one);
    ``roundtrip`` proves each rollback on a scratch database, never on the target: on
    ``scratch_url``'s server, else on the configured database's own server when its role may
    create a database (the same major), else on the embedded server, started if needed.
    ``pg_major`` is the target version for version-aware rules: else the connected server's,
    else the newest known.
    ``trace`` runs the pending migrations on a scratch database (the same server choice; the
    schema copied from the database when one is configured) and reports, per statement, the
    locks it held and the tables it rewrote, with a `trace-disagrees` finding wherever that
    is not what the rules predicted.  ``fixes=False`` leaves out the findings' fixes (they
    cost a parse each), for outputs that never show them.  ``since`` (else the project's
    `lint_since`) is the newest migration of an adopted history: lint findings in migrations up
    to it go to ``report.history`` and never count; file problems (a file that does not parse)
    and drift still do.

    What the rules found in each migration is kept in the project's `.pgshift/cache/`
    (lint/memo.py), so only migrations that are new or follow a changed one are linted again.
    ``on_event`` hears what the round trip and the trace are doing (`pgshift.events.Working`,
    `WorkDone`): they take seconds, a scratch database each.
    """
    from pgshift import events
    from pgshift.ops import validation

    return validation.validate(
        settings,
        strict=strict,
        pg_major=pg_major,
        roundtrip=roundtrip,
        scratch_url=scratch_url,
        trace=trace,
        fixes=fixes,
        since=since,
        emit=on_event or events.ignore,
    )


def explain(code: str) -> str:
    """The page of lint rule ``code`` (Markdown, the text of docs/rules/CODE.md).

    An unknown code raises UsageError (exit 2) whose hint names the closest rules.
    """
    from pgshift.lint.pages import page

    return page(code)
