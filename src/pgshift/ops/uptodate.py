"""Remembered answers of commands with nothing to do: a no-op `up`, a database at its head.

Why it exists: every deploy, init container and fleet tenant runs `pgshift up` or `pgshift
wait`, and most of the time there is nothing to do. Whether there is depends on three things
only: the migration files, the history, and pgshift's own code. Once the full path has decided
that there is nothing to do, the answer is kept (`.pgshift/cache/verdicts.json`) under a key
made of all three: the folder's settled stat signature (source/folder_stat.py), the stamp of
the history's rows (PostgresHistoryStore.stamp, verified in one snapshot against the digest of
the history the decision read) and a stamp of the code. The next command makes the same key
from a stat of the folder and one stamp the server computes (no migration file opened, no
history sent, psycopg not imported), and answers at once when the key is kept. Anything else,
an error on the way included, takes the full path, which decides and reports as it always did.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

from pgshift.errors import PgshiftError
from pgshift.project_files import FolderMemory, read_verdicts, write_verdicts

if TYPE_CHECKING:
    from pgshift.config import Settings

#: `up` has nothing to apply and no checksum to upgrade.
UP = "up"
#: Every migration on disk is applied as it is: `status --check` and `wait` pass.
HEAD = "head"
#: Keys kept, newest first: a project deployed to several databases keeps each one's.
KEEP = 64
_FORMAT = 1


class Verdicts(FolderMemory):
    """One command's use of the remembered answers: asked before its work, told after it."""

    def holds(self, kind: str) -> str | None:
        """The note kept with ``kind`` when it was decided for exactly these files and the
        history as it is now (``remember``); None when it was not.

        Never raises and never starts the embedded server: an unreachable database, a missing
        libpq or anything unexpected is simply not a remembered answer.
        """
        if self.folder is None:
            return None
        kept = read_verdicts(self.settings)
        if not kept:  # nothing remembered here: spare the connection
            return None
        stamp = _history_stamp(self.settings)
        return kept.get(self._key(kind, stamp)) if stamp else None

    def remember(self, kind: str, history_digest: str, note: str = "") -> None:
        """Keep ``kind`` (and ``note``: what the answer says, e.g. the head's version) as
        decided for these files and the history whose read gave ``history_digest``.

        Not when the signature is not settled (a file changed in the last seconds could
        change again unseen), nor when that history is no longer the one in the database.
        """
        if self.folder is None or not self.folder.settled or not history_digest:
            return
        stamp = _history_stamp(self.settings, history_digest)
        if not stamp:
            return
        key = self._key(kind, stamp)
        kept = read_verdicts(self.settings)
        if next(iter(kept.items()), None) == (key, note):
            return
        kept.pop(key, None)
        write_verdicts(self.settings, {key: note, **dict(list(kept.items())[: KEEP - 1])})

    def _key(self, kind: str, history_stamp: str) -> str:
        assert self.folder is not None
        document = [
            _FORMAT,
            kind,
            self._code,
            self.folder.digest,
            self.settings.connection.schema,
            history_stamp,
        ]
        return hashlib.sha256(json.dumps(document).encode()).hexdigest()


def _history_stamp(settings: Settings, digest: str | None = None) -> str:
    """The configured database's history stamp (Target.history_stamp, verified against
    ``digest`` when given); "" when its embedded server is not running or on any error."""
    from pgshift.db.target import Target
    from pgshift.postmaster import url_without_starting

    url = url_without_starting(settings)
    if url is None:
        return ""
    try:
        with Target.from_settings(settings, url, purpose="check") as target:
            return target.history_stamp(digest)
    except PgshiftError:
        return ""
