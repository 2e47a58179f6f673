"""Backup manifests: their values, the backup folder on disk, checksums, and retention decisions.

Why it is separate from ``backup.py``: none of this needs a database or a child process, so it
is tested from literals (tests/unit/test_manifest.py) and import-linter keeps it in the pure
core. What a backup *is* (a manifest beside its archive, written last, so a manifest means
"complete and checked"), which backups retention removes, and whether an archive is intact are
decisions; taking and restoring archives (``backup.py``) are the side effects around them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pgshift.errors import BackupError, UsageError
from pgshift.events import BackupProgress, BackupTaken
from pgshift.model import SchemaObject

REASONS = ("before-up", "before-rollback", "manual")
MANIFEST_SUFFIX = ".json"
DUMP_SUFFIX = ".dump"
_ID_RE = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{6}$")
_CHUNK = 1 << 20


# -- values ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Manifest:
    """What one backup is: written beside its archive as ``<id>.json``."""

    id: str
    created_at: str  # ISO 8601, UTC
    reason: str
    database: str  # the database name, never a URL
    server: str  # host:port, no credentials
    server_version: str
    pg_dump_version: str
    size_bytes: int
    sha256: str
    versions: tuple[str, ...]  # migrations applied when the snapshot was taken
    run_id: str | None
    schema: str  # pgshift's history schema in that database
    log_id: int  # newest history log row in the snapshot (0: none)
    objects: tuple[SchemaObject, ...] = ()
    file: str = ""

    @property
    def created(self) -> datetime:
        return datetime.fromisoformat(self.created_at)

    def to_json(self) -> dict[str, Any]:
        """The manifest's JSON form; the objects' drop statements are not kept (recomputed)."""
        return {
            "id": self.id,
            "created_at": self.created_at,
            "reason": self.reason,
            "database": self.database,
            "server": self.server,
            "server_version": self.server_version,
            "pg_dump_version": self.pg_dump_version,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "versions": list(self.versions),
            "run_id": self.run_id,
            "schema": self.schema,
            "log_id": self.log_id,
            "file": self.file,
            "objects": [[o.kind, o.identity, o.shape] for o in self.objects],
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> Manifest:
        """Read a manifest, filling in what manifests of older pgshift versions lack."""
        return Manifest(
            id=str(data["id"]),
            created_at=str(data["created_at"]),
            reason=str(data["reason"]),
            database=str(data["database"]),
            server=str(data.get("server", "")),
            server_version=str(data["server_version"]),
            pg_dump_version=str(data["pg_dump_version"]),
            size_bytes=int(data["size_bytes"]),
            sha256=str(data["sha256"]),
            versions=tuple(str(v) for v in data.get("versions", [])),
            run_id=data.get("run_id"),
            schema=str(data.get("schema", "pgshift")),
            log_id=int(data.get("log_id", 0)),
            objects=tuple(SchemaObject(str(k), str(i), str(s)) for k, i, s in data["objects"]),
            file=str(data.get("file") or f"{data['id']}{DUMP_SUFFIX}"),
        )


#: Backup progress is an event of the run's one stream (pgshift.events).
OnProgress = Callable[[BackupProgress], None]


def no_progress(_: BackupProgress) -> None:
    """Progress sink for callers that do not show progress."""


def new_backup_id(now: datetime | None = None) -> str:
    """A sortable id (the UTC second) with a random tail, so two backups in a second differ."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


# -- the backup folder ---------------------------------------------------------------------------


def private_dir(folder: Path) -> Path:
    """Create the folder 0700 (whatever the umask) and tighten it if it already existed.

    A folder that cannot be made or used (a file by that name, /proc, no permission) is a
    bad setting, ConfigError (exit 2) naming DB_BACKUP_DIR, not a crash.
    """
    from pgshift.errors import ConfigError

    try:
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
    except OSError as exc:
        what = "is a file, not a folder" if folder.is_file() else (exc.strerror or str(exc))
        raise ConfigError(
            f"DB_BACKUP_DIR {folder}: cannot use it as the backup folder: {what}",
            hint="set DB_BACKUP_DIR to a folder pgshift may create and write",
        ) from exc
    return folder


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable: without it a crash can forget the new name."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, 0600, durable."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_manifest(folder: Path, manifest: Manifest) -> Path:
    """Write ``<id>.json`` beside the archive; the last step of a backup, so it means "done"."""
    path = folder / f"{manifest.id}{MANIFEST_SUFFIX}"
    write_private(path, json.dumps(manifest.to_json(), indent=2).encode())
    return path


def sha256_of(path: Path) -> str:
    """The file's SHA-256, read in chunks so a large archive does not fill memory."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def backups_in(backup_dir: Path) -> list[Manifest]:
    """Every complete backup of the folder, oldest first (an archive without manifest is not)."""
    if not backup_dir.is_dir():
        return []
    found: list[Manifest] = []
    for path in backup_dir.glob(f"*{MANIFEST_SUFFIX}"):
        if not _ID_RE.match(path.stem):
            continue
        try:
            found.append(Manifest.from_json(json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # unreadable manifests are not backups we can vouch for
    return sorted(found, key=lambda m: (m.created_at, m.id))


def get_manifest(backup_dir: Path, backup_id: str) -> Manifest:
    """The backup named ``backup_id``; an unknown id is the user's mistake (exit 2)."""
    for manifest in backups_in(backup_dir):
        if manifest.id == backup_id:
            return manifest
    raise UsageError(
        f"no backup {backup_id!r} in {backup_dir}",
        hint="`pgshift rollback list-backups` shows the backups there are",
    )


def verify_checksum(backup_dir: Path, manifest: Manifest) -> Path:
    """The archive's path once its SHA-256 matches the manifest's; BackupError otherwise."""
    path = backup_dir / manifest.file
    if not path.is_file():
        raise BackupError(f"backup {manifest.id}: its archive {path} is missing")
    actual = sha256_of(path)
    if actual != manifest.sha256:
        raise BackupError(
            f"backup {manifest.id}: the archive's SHA-256 is {actual}, the manifest says"
            f" {manifest.sha256}; it is corrupted or was changed, and was not restored",
            hint="restore another backup (`pgshift rollback list-backups`)",
        )
    return path


# -- comparing inventories -------------------------------------------------------------------------


def compare_inventories(
    expected: Sequence[SchemaObject],
    actual: Sequence[SchemaObject],
    *,
    ignore_quoted_schema: str = "",
) -> list[str]:
    """Human-readable differences between two inventories (empty: the same schema).

    Objects in ``ignore_quoted_schema`` (pgshift's own tables, which a newer pgshift may have
    upgraded) are left out. The name is spelled as the inventory spells identities, i.e. quoted
    by the server (``db.inventory.quote_ident``): this module cannot ask it, and quoting by hand
    is how identifiers go wrong.
    """
    skip = ignore_quoted_schema or None

    def relevant(objects: Sequence[SchemaObject]) -> dict[tuple[str, str], str]:
        out: dict[tuple[str, str], str] = {}
        for o in objects:
            if skip and (o.identity == skip or in_schema(o, skip)):
                continue
            out[o.key] = o.shape
        return out

    want, have = relevant(expected), relevant(actual)
    lines = [f"{k} {i} exists but should not" for (k, i) in sorted(have.keys() - want.keys())]
    lines += [f"{k} {i} is missing" for (k, i) in sorted(want.keys() - have.keys())]
    for key in sorted(want.keys() & have.keys()):
        if want[key] != have[key]:
            lines.append(f"{key[0]} {key[1]} differs: {have[key]!r}, was {want[key]!r}")
    return lines


def in_schema(obj: SchemaObject, quoted_schema: str) -> bool:
    """Whether the object lives in the schema (constraints are named "c on schema.table")."""
    if obj.kind == "constraint":
        return f" on {quoted_schema}." in obj.identity
    return obj.identity.startswith(quoted_schema + ".")


def newer_than(manifest: Manifest, current: Sequence[SchemaObject]) -> tuple[SchemaObject, ...]:
    """Objects of ``current`` the backup does not know: created after it, dropped by a restore."""
    known = {o.key for o in manifest.objects}
    return tuple(o for o in current if o.key not in known)


# -- retention -------------------------------------------------------------------------------------


def backups_to_prune(
    manifests: Sequence[Manifest],
    *,
    database: str,
    server: str,
    retention_days: int,
    protected_run_id: str | None,
    now: datetime,
    present: Collection[str] | None = None,
) -> list[Manifest]:
    """Which of this database's backups retention removes, oldest first; decides, deletes nothing.

    Never removed: the newest backup whose archive is still there (``present``: ids whose
    archive exists; None: all of them), i.e. the last good one; and the backups of the last run
    that applied migrations (``protected_run_id``), which `rollback emergency` falls back to.
    Backups of other databases or servers in the same folder are not this database's to judge.
    ``retention_days`` 0 (or less) keeps everything.
    """
    if retention_days <= 0:
        return []
    mine = sorted(
        (m for m in manifests if m.database == database and m.server == server),
        key=lambda m: (m.created_at, m.id),
    )
    intact = [m for m in mine if present is None or m.id in present]
    keep = {intact[-1].id} if intact else set()
    if protected_run_id:
        keep |= {m.id for m in mine if m.run_id == protected_run_id}
    cutoff = now - timedelta(days=retention_days)
    return [m for m in mine if m.id not in keep and m.created < cutoff]


def prune(
    backup_dir: Path,
    *,
    database: str,
    server: str,
    retention_days: int,
    protected_run_id: str | None,
    now: datetime | None = None,
) -> list[str]:
    """Delete the backups ``backups_to_prune`` picks from the folder; returns the deleted ids."""
    manifests = backups_in(backup_dir)
    doomed = backups_to_prune(
        manifests,
        database=database,
        server=server,
        retention_days=retention_days,
        protected_run_id=protected_run_id,
        now=now or datetime.now(UTC),
        present={m.id for m in manifests if (backup_dir / m.file).is_file()},
    )
    for m in doomed:
        # The manifest goes first: an archive without one is never mistaken for a backup.
        (backup_dir / f"{m.id}{MANIFEST_SUFFIX}").unlink(missing_ok=True)
        (backup_dir / m.file).unlink(missing_ok=True)
    return [m.id for m in doomed]


def taken(manifest: Manifest) -> BackupTaken:
    """The event that says this backup was taken (every verb that takes one emits it)."""
    return BackupTaken(
        manifest.id, manifest.reason, manifest.size_bytes, manifest.sha256, len(manifest.versions)
    )
