"""Checking a project without changing a database, composed once: files, lint, drift, proofs.

`pgshift.validate` is a skin over validate() here. The linter's findings memo and its helper
process (lint/memo.py, beside.py) are driven from here, drift is read from a configured database
only, and the proofs on a copy (roundtrip, trace) go to ops/scratch.py's choice of server.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pgshift.config import Settings

if TYPE_CHECKING:
    from pgshift.db.tooltables import ToolTable
    from pgshift.lint.ahead import LintAhead
    from pgshift.lint.finding import Finding
    from pgshift.model import Migration
    from pgshift.ops.trace import TraceReport


@dataclass(frozen=True)
class ValidateReport:
    """What `validate` found; ``ok`` is False when any finding is an error.

    ``history`` are the lint findings in migrations up to ``since`` (`lint_since`, or
    validate(since=...)): an adopted history that ran long ago and can never change. They are
    not in ``findings`` and never count; `validate --all` shows them.
    """

    findings: tuple[Finding, ...]
    pg_major: int  # the PostgreSQL major version the version-aware rules assumed
    database_checked: bool  # drift was checked against a configured database
    trace: TraceReport | None = None  # validate(trace=True): what the server did, per statement
    history: tuple[Finding, ...] = ()
    since: str | None = None

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)


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
    """
    from pgshift.lint import LATEST_MAJOR
    from pgshift.lint.finding import problem_findings
    from pgshift.project_files import read_project

    if since is not None and (len(since) != 14 or not since.isdigit()):
        from pgshift.errors import UsageError

        raise UsageError(f"--since {since!r}: expected a migration version (14 digits)")
    # Drift is checked against a configured database only (a flag, DATABASE_URL or the PG*
    # variables), never against the embedded server: whether some project's embedded server
    # happens to be running (a parent folder's, found by the root search) must not change
    # what `validate` says about these files.
    url = settings.connection.url
    # When the rules' target version is known before reading (no server to ask), a cold read
    # lints each file as it parses it (lint/ahead.py): its tree is read once.
    ahead = None
    if pg_major is not None or url is None:
        from pgshift.lint.ahead import LintAhead

        ahead = LintAhead(pg_major or LATEST_MAJOR, fixes=fixes)
    loaded = read_project(settings, listener=ahead)
    findings = problem_findings(loaded.problems)
    # Loader warnings that a lint rule reports too (no rollback, unknown @key) come from it.
    findings += problem_findings((w for w in loaded.warnings if w.rule is None), severity="warning")
    checked = url is not None
    if url is not None:
        major, drift = _drift_findings(settings, url, loaded.migrations)
        findings += drift
        pg_major = pg_major or major
    bad_files = frozenset(p.file for p in loaded.problems)
    pg_major = pg_major or LATEST_MAJOR
    linted = _lint_project(settings, loaded.migrations, bad_files, pg_major, fixes, ahead)
    since = since or settings.lint.since
    history: list[Finding] = []
    if since is not None:
        linted, history = _split_history(linted, loaded.migrations, since)
    findings += linted
    if roundtrip:
        from pgshift.ops.apply import RunOptions
        from pgshift.ops.roundtrip import roundtrip as run_roundtrip
        from pgshift.ops.scratch import scratch_server

        findings += run_roundtrip(
            loaded.migrations,
            scratch_server(settings, url, scratch_url),
            RunOptions.from_settings(settings),
            bad_files=bad_files,
            tool_tables=_tool_tables(settings, url, loaded.migrations),
        )
    traced: TraceReport | None = None
    if trace:
        traced, disagreements = _trace(settings, url, scratch_url, loaded.migrations, findings)
        findings += disagreements
    if strict:
        findings = [f.as_error() for f in findings]
    return ValidateReport(
        tuple(sorted(findings, key=lambda f: f.sort_key())),
        pg_major,
        checked,
        traced,
        tuple(sorted(history, key=lambda f: f.sort_key())),
        since,
    )


def _split_history(
    findings: Sequence[Finding], migrations: Sequence[Migration], since: str
) -> tuple[list[Finding], list[Finding]]:
    """(findings that count, findings in the files of migrations up to ``since``)."""
    old: set[str] = set()
    for m in migrations:
        if m.version <= since:
            old.add(str(m.path))
            if m.rollback is not None:
                old.add(str(m.rollback.path))
    current = [f for f in findings if f.file not in old]
    return current, [f for f in findings if f.file in old]


def _lint_project(
    settings: Settings,
    migrations: Sequence[Migration],
    bad_files: frozenset[str],
    pg_major: int,
    fixes: bool,
    ahead: LintAhead | None = None,
) -> list[Finding]:
    """The rules' findings over the project, from the findings memo where it holds them.

    When every migration is in the memo, neither the rules nor the parser are even imported;
    when ``ahead`` linted every file as it was read, only its file-level rules are left.
    """
    from pgshift.lint.memo import chain_keys
    from pgshift.project_files import read_lint_memo, write_lint_memo

    memo = read_lint_memo(settings)
    keys = chain_keys(migrations, bad_files, pg_major=pg_major, fixes=fixes)
    remembered = memo.recall(keys)
    if remembered is not None:
        write_lint_memo(settings, memo)
        return remembered
    linted = ahead.findings(migrations, bad_files) if ahead is not None else None
    if linted is not None:
        for key, found in zip(keys, linted, strict=True):
            memo.put(key, found)
        memo.finish()
        write_lint_memo(settings, memo)
        return [f for found in linted for f in found]
    from pgshift.lint.engine import Linter
    from pgshift.project_files import beside

    linter = Linter(pg_major, fixes=fixes)
    found = linter.lint_migrations(migrations, bad_files, memo=memo, helper=beside)
    write_lint_memo(settings, memo)
    return found


def _tool_tables(
    settings: Settings, url: str | None, migrations: Sequence[Migration]
) -> list[ToolTable]:
    """Other tools' tables the migrations refer to, as the configured database has them."""
    if url is None:
        return []
    from pgshift.db.target import Target
    from pgshift.ops.baseline import tool_tables_for

    with Target.from_settings(settings, url, purpose="validate") as target:
        return tool_tables_for(migrations, target)


def _trace(
    settings: Settings,
    url: str | None,
    scratch_url: str | None,
    migrations: Sequence[Migration],
    static: Sequence[Finding],
) -> tuple[TraceReport, list[Finding]]:
    """`validate --trace` on a scratch database (``scratch_url``'s server; else the target's
    own server when its role may create a database; else the embedded one)."""
    from pgshift.ops.scratch import scratch_server
    from pgshift.ops.trace import trace as run_trace

    server = scratch_server(settings, url, scratch_url)
    return run_trace(
        migrations, server, history_schema=settings.connection.schema, target_url=url, static=static
    )


def _drift_findings(
    settings: Settings, url: str, migrations: Sequence[Migration]
) -> tuple[int, list[Finding]]:
    """The server's major version, and applied migrations whose file changed or is gone."""
    from pgshift.db.target import Target
    from pgshift.lint.registry import finding_for
    from pgshift.plan import DRIFTED, MISSING, migration_states

    with Target.from_settings(settings, url, purpose="validate") as target:
        major = target.facts.major
        history = target.read_history()
    findings: list[Finding] = []
    for row in migration_states(migrations, history):
        if row.state == DRIFTED and row.migration is not None:
            findings.append(
                finding_for(
                    "checksum-drift",
                    str(row.migration.path),
                    1,
                    1,
                    "this file changed after it was applied: the database ran another version"
                    " of it, and pgshift up refuses to continue",
                )
            )
        elif row.state == MISSING:
            name = f"{row.version}_{row.description}.sql"
            findings.append(
                finding_for(
                    "missing-file",
                    str(settings.project.migrations_dir / name),
                    1,
                    1,
                    f"migration {row.version}_{row.description} is applied, but its file is gone",
                )
            )
    return major, findings
