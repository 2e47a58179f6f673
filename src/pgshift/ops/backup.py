"""Taking and restoring backups of a Target: the orchestration around pg_dump archives.

Why it is shaped this way:

* A backup is only as good as the proof that it can be restored, so each archive is written
  under a temporary name, fsynced, listed with ``pg_restore --list``, hashed, and only then
  renamed into place; its manifest is written last, so a manifest means "complete and checked".
* The dump, the versions recorded in the manifest and the inventory of schema objects are
  read from one exported snapshot, so the manifest describes exactly what the archive holds.
* Credentials reach pg_dump, pg_restore and psql only through the process helper's temporary
  0600 password file (``pgshift.process.child_connection``), never on a command line.
* A restore must leave the database either exactly as the backup describes it or untouched. The
  archive's own ``--clean`` only drops what the archive contains, so objects created after the
  backup (a table a migration added, with a foreign key to a restored table) would make it fail
  or survive it. They are dropped at the start of the same single transaction that replays the
  archive: ``pg_restore --clean --if-exists --exit-on-error`` piped into ``psql --single-transaction
  -v ON_ERROR_STOP=1``, so any error rolls back everything.
* Child processes start through ``pgshift.process``, manifests and retention are decided in
  ``manifest.py`` (pure), and the SQL sent is ``db/inventory.py``'s: this module orchestrates.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING

from pgshift.config import environment
from pgshift.db.inventory import (
    begin_snapshot,
    current_database,
    drop_statements,
    end_snapshot,
    has_schema,
    history_snapshot,
    identifier,
    inventory,
    last_applying_run,
    log_rows_after,
    restore_epilogue,
)
from pgshift.db.target import Target
from pgshift.errors import BackupError, QueryFailed
from pgshift.events import BackupProgress
from pgshift.model import SchemaObject
from pgshift.ops.manifest import (
    DUMP_SUFFIX,
    REASONS,
    Manifest,
    OnProgress,
    compare_inventories,
    fsync_dir,
    new_backup_id,
    newer_than,
    no_progress,
    private_dir,
    prune,
    sha256_of,
    taken,
    verify_checksum,
    write_manifest,
)
from pgshift.process import Tools, child_connection, find_tools, pipe, run, run_into

if TYPE_CHECKING:
    from pgshift.config import Settings
    from pgshift.events import Emit

_PROGRESS_EVERY_S = 0.5
#: How long pg_dump may wait for its ACCESS SHARE locks; it must not queue for ever behind a
#: session holding an ACCESS EXCLUSIVE lock (and make everyone else queue behind it).
DEFAULT_LOCK_WAIT_MS = 10_000


# -- values ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RestoreResult:
    """What a restore did, including what it dropped, so the caller can say so afterwards."""

    manifest: Manifest
    dropped: tuple[SchemaObject, ...]  # objects created after the backup, dropped by the restore
    duration_ms: int
    backup_id: str | None = None  # the safety backup taken just before, if one was


# -- taking a backup -------------------------------------------------------------------------------


def take_backup(
    target: Target,
    backup_dir: Path,
    *,
    reason: str,
    schema: str = "pgshift",
    run_id: str | None = None,
    lock_wait_ms: int = DEFAULT_LOCK_WAIT_MS,
    progress: OnProgress = no_progress,
) -> Manifest:
    """Dump the database into ``backup_dir`` and write its manifest; BackupError on any failure.

    Nothing is left behind by a failed backup: the temporary archive is deleted. The snapshot
    pg_dump reads is exported by the target's own session, in a read-only transaction held
    open for the dump, so the backup costs no connection beyond pg_dump's.
    """
    if reason not in REASONS:
        raise ValueError(f"unknown backup reason {reason!r}")
    folder = private_dir(backup_dir)
    backup_id = new_backup_id()
    final = folder / f"{backup_id}{DUMP_SUFFIX}"
    tmp = folder / f".{backup_id}{DUMP_SUFFIX}.tmp"
    conn = target.session
    try:
        try:
            with target.translated():
                snap = begin_snapshot(conn, schema)
        except QueryFailed as exc:
            raise BackupError("cannot read the database to back it up: " + exc.message) from None
        tools = find_tools(snap.server_major)
        created = datetime.now(UTC)
        _dump(tools, target, snap.id, tmp, lock_wait_ms, snap.size_bytes, progress)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        end_snapshot(conn)
    try:
        progress(BackupProgress("verify", tmp.stat().st_size, tmp.stat().st_size))
        _check_listing(tools, target, tmp)
        digest = sha256_of(tmp)
        size = tmp.stat().st_size
        os.replace(tmp, final)
        fsync_dir(folder)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    manifest = Manifest(
        id=backup_id,
        created_at=created.isoformat(),
        reason=reason,
        database=snap.database,
        server=snap.server,
        server_version=snap.server_version,
        pg_dump_version=tools.version,
        size_bytes=size,
        sha256=digest,
        versions=snap.versions,
        run_id=run_id,
        schema=schema,
        log_id=snap.log_id,
        objects=snap.objects,
        file=final.name,
    )
    try:
        write_manifest(folder, manifest)
    except BaseException:
        final.unlink(missing_ok=True)
        raise
    return manifest


def _dump(
    tools: Tools,
    target: Target,
    snapshot: str,
    archive: Path,
    lock_wait_ms: int,
    db_size: int,
    progress: OnProgress,
) -> None:
    """Run pg_dump into ``archive`` (created 0600 by us, so the umask cannot widen it)."""
    fd = os.open(archive, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        with child_connection(*target.child_conninfo()) as (conn_argv, env):
            command = [
                tools.path("pg_dump"),
                "--format=custom",
                f"--snapshot={snapshot}",
                f"--lock-wait-timeout={lock_wait_ms}ms",
                "--no-sync",  # we fsync ourselves, after the whole file is written
                *conn_argv,
            ]
            finished = run_into(
                command,
                out,
                env=env,
                on_tick=lambda: progress(
                    BackupProgress("dump", os.fstat(out.fileno()).st_size, db_size)
                ),
                tick_s=_PROGRESS_EVERY_S,
            )
        out.flush()
        os.fsync(out.fileno())
        progress(BackupProgress("dump", os.fstat(out.fileno()).st_size, db_size))
    if finished.status != 0:
        raise BackupError(
            f"pg_dump failed (exit status {finished.status}):"
            f" {target.redact(finished.stderr.strip()) or 'no message'}"
        )


def _check_listing(tools: Tools, target: Target, archive: Path) -> int:
    """``pg_restore --list``: proves the archive's table of contents reads back; returns entries.

    An empty database has no entries, so the proof is the exit status and the archive header.
    """
    result = run([tools.path("pg_restore"), "--list", str(archive)], timeout_s=600)
    if result.status != 0 or "; Archive created at" not in result.stdout:
        raise BackupError(
            f"the new archive {archive.name} cannot be read back by pg_restore:"
            f" {target.redact(result.stderr.strip()) or 'no table of contents'}"
        )
    return sum(1 for line in result.stdout.splitlines() if line and not line.startswith(";"))


# -- restoring -------------------------------------------------------------------------------------


def inspect_restore(
    target: Target, backup_dir: Path, manifest: Manifest
) -> tuple[tuple[SchemaObject, ...], str]:
    """(objects the restore would drop because they are newer than the backup, database name).

    Also checks the archive's checksum, so a corrupt backup is refused before any question.
    """
    verify_checksum(backup_dir, manifest)
    conn = target.session
    return newer_than(manifest, inventory(conn)), current_database(conn)


def restore_backup(
    target: Target,
    backup_dir: Path,
    manifest: Manifest,
    *,
    run_id: str | None = None,
    lock_timeout_ms: int = DEFAULT_LOCK_WAIT_MS,
    progress: OnProgress = no_progress,
) -> RestoreResult:
    """Replace the database's contents with the backup's, in one transaction.

    The caller holds the runner lock. The target's session reads what to drop and what to keep
    before, and reads the result back after; the archive is replayed by pg_restore | psql,
    connected through the process helper. On any failure the transaction is rolled back, the
    database is as it was, and BackupError says why.
    """
    started = time.monotonic()
    archive = verify_checksum(backup_dir, manifest)
    conn = target.session
    server_major = target.facts.major
    extras = newer_than(manifest, inventory(conn))
    epilogue = restore_epilogue(
        conn,
        schema=manifest.schema,
        backup_objects=manifest.objects,
        later_log=log_rows_after(conn, manifest.schema, manifest.log_id),
        run_id=run_id,
        detail={
            "backup_id": manifest.id,
            "created_at": manifest.created_at,
            "versions": list(manifest.versions),
            "dropped": [f"{o.kind} {o.identity}" for o in extras],
        },
    )
    tools = find_tools(server_major)
    if tools.major < int(manifest.pg_dump_version.split(".")[0] or 0):
        raise BackupError(
            f"backup {manifest.id} was written by pg_dump {manifest.pg_dump_version};"
            f" pg_restore {tools.version} cannot read it"
        )
    prelude = drop_statements(extras)
    _run_restore(tools, target, archive, server_major, lock_timeout_ms, prelude, epilogue, progress)
    # Prove it: the restored database must hold exactly what the manifest describes.
    try:
        with target.translated():
            conn = target.session
            after = inventory(conn)
            versions, _ = history_snapshot(conn, manifest.schema)
    except QueryFailed as exc:  # pragma: no cover - the server vanished right after
        raise BackupError("restored, but cannot read the database back: " + exc.message) from None
    differences = compare_inventories(manifest.objects, after)
    if versions != manifest.versions or differences:
        detail = "; ".join(differences[:10]) or (
            f"applied versions are {list(versions)}, expected {list(manifest.versions)}"
        )
        raise BackupError(f"backup {manifest.id} was restored but does not match it: {detail}")
    return RestoreResult(manifest, extras, int((time.monotonic() - started) * 1000))


def _run_restore(
    tools: Tools,
    target: Target,
    archive: Path,
    server_major: int,
    lock_timeout_ms: int,
    prelude: Sequence[str],
    epilogue: Sequence[str],
    progress: OnProgress,
) -> None:
    """``pg_restore --clean --if-exists --exit-on-error -f -`` | ``psql --single-transaction``."""
    reader = [
        tools.path("pg_restore"),
        "--clean",
        "--if-exists",
        "--exit-on-error",
        "--file=-",
        str(archive),
    ]
    size = archive.stat().st_size
    with child_connection(*target.child_conninfo()) as (conn_argv, env):
        _into_psql(
            tools,
            reader,
            environment(),
            conn_argv,
            env,
            target.redact,
            lambda script, psql: _pump(
                script,
                psql,
                prelude,
                epilogue,
                server_major,
                lock_timeout_ms,
                lambda n: progress(BackupProgress("restore", n, size)),
            ),
            f"restoring {archive.name}",
        )


def copy_schema(
    source_url: str | None,
    dest_url: str,
    *,
    history_schema: str,
    lock_wait_ms: int = DEFAULT_LOCK_WAIT_MS,
) -> None:
    """Copy the source's schema (no rows) and pgshift's history rows into an empty database.

    For `rollback dry-run --simulate`: the rollback files run against the same tables, types
    and functions as on the target, and the history says what is applied, while the target is
    only read (pg_dump takes ACCESS SHARE locks, bounded by ``lock_wait_ms``).
    """
    with (
        Target(source_url, schema=history_schema, purpose="simulate") as source,
        Target(dest_url, schema=history_schema, purpose="simulate") as dest,
    ):
        source_major, dest_major = source.facts.major, dest.facts.major
        history_pattern = identifier(source.session, history_schema)
        has_history = has_schema(source.session, history_schema)

    def redact_both(text: str) -> str:
        return dest.redact(source.redact(text))

    tools = find_tools(max(source_major, dest_major))
    passes = [["--schema-only"]]
    if has_history:
        passes.append(["--data-only", f"--schema={history_pattern}"])
    with (
        child_connection(*source.child_conninfo()) as (source_argv, source_env),
        child_connection(*dest.child_conninfo()) as (dest_argv, dest_env),
    ):
        for extra in passes:
            reader = [
                tools.path("pg_dump"),
                "--format=plain",
                f"--lock-wait-timeout={lock_wait_ms}ms",
                *extra,
                *source_argv,
            ]
            _into_psql(
                tools,
                reader,
                source_env,
                dest_argv,
                dest_env,
                redact_both,
                lambda script, psql: _pump(
                    script,
                    psql,
                    (),
                    (),
                    dest_major,
                    lock_wait_ms,
                    lambda _: None,
                    another_server=True,
                ),
                "copying the schema into the scratch database",
            )


def _into_psql(
    tools: Tools,
    reader_argv: Sequence[str],
    reader_env: dict[str, str],
    writer_conn_argv: Sequence[str],
    writer_env: dict[str, str],
    redact: Callable[[str], str],
    feed: Callable[[IO[bytes], IO[bytes]], None],
    what: str,
) -> None:
    """Feed a SQL script from ``reader_argv`` into ``psql --single-transaction``.

    psql commits when its input ends, and the process helper's pipe only ends it after the
    reader has exited successfully; in every other case psql is killed and the server rolls
    the transaction back. BackupError quotes the last lines the two programs wrote, redacted.
    """
    writer = [
        tools.path("psql"),
        "--no-psqlrc",
        "--quiet",
        "--single-transaction",
        "--set=ON_ERROR_STOP=1",
        "--file=-",
        *writer_conn_argv,
    ]
    finished = pipe(reader_argv, reader_env, writer, writer_env, feed)
    if finished.ok:
        return
    messages = [line for line in finished.stderr.splitlines() if line.strip()]
    text = redact("\n".join(messages[-8:]))
    if not text and finished.error is not None:
        text = f"{type(finished.error).__name__}: {finished.error}"
    raise BackupError(
        f"{what} failed; its transaction was rolled back and the database is as it"
        f" was:\n{text or 'no message'}"
    )


#: The first line of pg_restore's script that is not part of its SET preamble.
_FIRST_WORK = (b"CREATE ", b"DROP ", b"ALTER ", b"COPY ", b"SELECT pg_", b"COMMENT ")
_SEARCH_PATH = b"SELECT pg_catalog.set_config('search_path'"


def _pump(
    source: IO[bytes],
    sink: IO[bytes],
    prelude: Sequence[str],
    epilogue: Sequence[str],
    server_major: int,
    lock_timeout_ms: int,
    on_progress: Callable[[int], None],
    *,
    another_server: bool = False,
) -> None:
    """Copy pg_restore's script into psql, adapting its preamble to the target server.

    * Objects newer than the backup are dropped right after the preamble's SET lines, in the
      same transaction.
    * ``SET lock_timeout = 0`` becomes a bounded wait, so the restore cannot queue the
      application's queries behind it for long; a busy lock fails the restore cleanly.
    * ``SET transaction_timeout`` (pg_dump >= 17) is dropped for servers that lack the setting.
    * ``another_server`` (a schema copied onto a scratch database): column options the source
      server stamped on its own, which other servers refuse, are left out (read on the parse
      tree: source/sql.sets_only_stamped_options).
    """
    from pgshift.source.sql import sets_only_stamped_options

    sent = 0
    last = time.monotonic()
    in_preamble = True
    prelude_sql = "".join(statement + "\n" for statement in prelude).encode()
    for raw in iter(source.readline, b""):
        line = raw
        if (
            another_server
            and raw.startswith(b"ALTER TABLE ")
            and b" SET (" in raw
            and sets_only_stamped_options(raw.decode("utf-8", errors="replace"))
        ):
            continue
        if in_preamble:
            stripped = raw.strip()
            if stripped == b"SET lock_timeout = 0;":
                line = f"SET lock_timeout = '{lock_timeout_ms}ms';\n".encode()
            elif stripped.startswith(b"SET transaction_timeout") and server_major < 17:
                continue
            elif stripped.startswith(_FIRST_WORK) and not stripped.startswith(_SEARCH_PATH):
                sink.write(prelude_sql)
                in_preamble = False
        sink.write(line)
        sent += len(line)
        if time.monotonic() - last >= _PROGRESS_EVERY_S:
            on_progress(sent)
            last = time.monotonic()
    if in_preamble:
        sink.write(prelude_sql)
    for statement in epilogue:
        sink.write(statement.encode() + b"\n")
    sink.flush()
    on_progress(sent)


def backup_for(
    settings: Settings,
    target: Target,
    *,
    reason: str,
    run_id: str | None = None,
    progress: OnProgress = no_progress,
) -> tuple[Manifest, list[str]]:
    """Take a backup as the settings say, log it in the history, and prune old ones.

    Returns the manifest and the ids of the backups retention removed. Logging and pruning
    happen after the archive is safe; a failure there does not undo the backup.
    """
    manifest = take_backup(
        target,
        settings.backup.dir,
        reason=reason,
        schema=settings.connection.schema,
        run_id=run_id,
        lock_wait_ms=max(settings.runner.lock_timeout_ms, DEFAULT_LOCK_WAIT_MS),
        progress=progress,
    )
    try:
        with target.translated():
            protected = _log_backup(target, settings.connection.schema, manifest, reason, run_id)
    except QueryFailed:
        return manifest, []  # the backup is safe; without history, prune nothing this time
    removed = prune(
        settings.backup.dir,
        database=manifest.database,
        server=manifest.server,
        retention_days=settings.backup.retention_days,
        protected_run_id=protected,
    )
    return manifest, removed


def take_reported(
    target: Target, *, reason: str, run_id: str | None = None, emit: Emit
) -> Manifest:
    """backup_for with the target's settings, its progress and then one BackupTaken reported
    through ``emit``: the backup `pgshift backup` takes, and the one before a run or restore."""
    manifest, _ = backup_for(target.settings, target, reason=reason, run_id=run_id, progress=emit)
    emit(taken(manifest))
    return manifest


def _log_backup(
    target: Target, schema: str, manifest: Manifest, reason: str, run_id: str | None
) -> str | None:
    """Log the backup in the history (when there is one); the run retention must keep."""
    conn, store = target.session, target.store
    if store.exists(conn):
        detail = {
            "backup_id": manifest.id,
            "reason": reason,
            "size_bytes": manifest.size_bytes,
            "sha256": manifest.sha256,
            "versions": list(manifest.versions),
        }
        store.log(conn, run_id, "backup_taken", None, detail)
    return last_applying_run(conn, schema)
