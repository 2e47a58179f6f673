"""The remembered `pgshift status`: the document it printed, kept for the next one to print as is.

Why it exists: a full `status` reads and decodes every migration file, imports the driver and
reads the whole history; most of the time nothing it shows has changed since the last one. The
principle is ops/uptodate.py's. What a status shows depends on these things only, and they
make the key a document is kept under (`.pgshift/cache/status.json`, a few entries, newest
first, one per database):

* the migration files: the folder's settled stat signature (source/folder_stat.py), and the
  folder's path as given (a problem names its file by it);
* the history's rows: their stamp (PostgresHistoryStore.stamp), taken in the same snapshot as
  the rows the status was built from (db/store.py read_with_facts), so it stands for exactly
  them;
* pgshift's own code and the parser (source/stamps.py), and the history schema's name;
* the session: its TimeZone (applied_at is shown in it), and what the role may do with the
  history schema, with the role's and database's names (the warning that `up` would refuse
  quotes them).

The next `status` makes the same key from a stat of the folder and one statement on a libpq
session (db/store.py status_facts: the stamp, TimeZone, grants and live runs together) and
prints the kept document when the key is there. No file is opened, neither psycopg, the loader
nor the planner is imported. Anything else, an error on the way included, takes the full path.

What is never kept, and why. A status that shows live state: a migration running (its marked
message in pg_stat_activity, db/activity.py), a migration in progress or being reverted, a
backfill under way or stopped. Those rows depend on more than the rows of the history: whether
a run holds the migration lock and whether a session is executing right now, which no stamp of
rows covers. So nothing is kept when the history read had any progress row or unfinished
backfill (a failed half-revert is one of those), or when a row was running; and the quick path
answers only when no live run of this schema is executing (status_facts.running): a run that
starts a transactional migration writes nothing before it commits, yet its row shows
"running". A failed migration with neither (its last event a failure) is kept: its row is
decided by the history's rows alone. Nor is a status with no history at all (nothing to
stamp); and where libpq does not load (db/readonly.py), nothing is answered from memory.

What the key does not cover: the system's time zone rules (tzdata) changing under the same
zone name, and a clock that a file's change time was set back against (source/folder_stat.py).
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, TypedDict, cast

from pgshift.project_files import (
    FolderMemory,
    KeptStatus,
    read_status_memory,
    write_status_memory,
)

if TYPE_CHECKING:
    from pgshift.db.store import StatusFacts

#: Documents kept, newest first, one per database: a project deployed to a few databases keeps
#: each one's; each is the size of `status --json`.
KEEP = 4
_FORMAT = 1


class StatusDocumentBackfill(TypedDict):
    """An unfinished backfill of a row (SPEC 14)."""

    action: str
    percent: float | None
    rows_done: int
    rows_estimate: int | None
    rows_changed: int
    batches: int
    running: bool
    text: str  # `backfilling 43% (2.1M of 4.9M rows)`


class StatusDocumentRow(TypedDict):
    """One migration's row: SPEC's keys, then what the table shows besides."""

    version: str
    description: str
    state: str
    applied_at: str | None  # ISO 8601, in the session's TimeZone
    duration_ms: int | None
    estimated_ms: int | None
    risk_level: str | None
    zero_downtime: bool | None
    running: bool
    half_reverted: bool
    detail: str | None
    duplicates: list[str]  # the other files that use the version
    backfill: StatusDocumentBackfill | None


class StatusDocumentProblem(TypedDict):
    file: str
    line: int
    column: int
    message: str


class StatusDocument(TypedDict):
    """`pgshift status` as the plain JSON document `--json` prints; the table, its title and the
    lines after it are drawn from it (cli/commands.py), on the full path and from memory alike.
    """

    migrations: list[StatusDocumentRow]
    pending: int
    applied: int
    failed: int
    half_reverted: int
    expanded: int
    problems: list[StatusDocumentProblem]
    warnings: list[str]


class StatusMemory(FolderMemory):
    """One `status`'s use of the remembered documents: asked before its work, told after it."""

    def recall(self) -> StatusDocument | None:
        """The document kept for exactly these files, history and session; None when there is
        none. Never raises and never starts the embedded server."""
        if self.folder is None:
            return None
        try:
            return self._recall()
        except Exception:  # any doubt is the full path's to settle, which reports it
            return None

    def _recall(self) -> StatusDocument | None:
        from pgshift.db.store import read_status_facts
        from pgshift.postmaster import url_without_starting

        url = url_without_starting(self.settings)
        if url is None:
            return None
        database = _database(url, self.settings.connection.schema)
        kept = next((k for k in read_status_memory(self.settings) if k.database == database), None)
        if kept is None:  # nothing remembered for this database: spare the connection
            return None
        schema = self.settings.connection.schema
        facts = read_status_facts(url, schema, kept.shape, purpose="status")
        if facts is None or facts.running or not facts.stamp or self._key(facts) != kept.key:
            return None
        return cast(StatusDocument, json.loads(kept.document))

    def remember(self, document: StatusDocument, facts: StatusFacts) -> None:
        """Keep ``document`` as built from the history and session ``facts`` describe (read in
        one snapshot with that history: db/store.py read_with_facts).

        The caller keeps nothing that shows live state (see the module's docstring). Not when
        the folder's signature is not settled (a file changed in the last seconds could change
        again unseen), nor without a stamp, nor while a live run was executing.
        """
        from pgshift.postmaster import url_without_starting

        if self.folder is None or not self.folder.settled or not facts.stamp or facts.running:
            return
        url = url_without_starting(self.settings)
        if url is None:
            return
        database = _database(url, self.settings.connection.schema)
        key = self._key(facts)
        kept = read_status_memory(self.settings)
        if kept and (kept[0].database, kept[0].key) == (database, key):
            return
        entry = KeptStatus(database, key, facts.shape, json.dumps(document).encode())
        others = [k for k in kept if k.database != database][: KEEP - 1]
        write_status_memory(self.settings, [entry, *others])

    def _key(self, facts: StatusFacts) -> str:
        assert self.folder is not None
        document = [
            _FORMAT,
            self._code,
            self.folder.digest,
            str(self.settings.project.migrations_dir),
            self.settings.connection.schema,
            facts.stamp,
            facts.timezone,
            list(facts.grant),
        ]
        return hashlib.sha256(json.dumps(document).encode()).hexdigest()


def _database(url: str, schema: str) -> str:
    """Which database and history an entry is for (its password masked before hashing): a
    newer document for it replaces the older one. Never trusted for an answer: the key is."""
    from pgshift.config import mask_url

    return hashlib.sha256(json.dumps([mask_url(url) if url else "", schema]).encode()).hexdigest()
