"""Which migrations a live run is executing right now, read from `pg_stat_activity`.

Why it is shaped this way: a transactional migration leaves no trace in the history until it
commits (its applied row is written in its own transaction), and writing a progress row at its
start would cost `up` a second round trip per migration. Instead the executor starts each
migration's one message with a comment naming it (``marker``), which costs nothing, and
`pg_stat_activity` shows that text while the server runs it, so `status` can say "running"
for both kinds of migration without the runner writing anything more.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

_SAFE_SCHEMA = re.compile(r"[A-Za-z0-9_$]+")
_MARKER = re.compile(r"^/\* pgshift (apply|revert) (\S+) (\d{14}) \*/")
#: The batch's other versions, after the marker; the text may be cut short anywhere in it.
_THEN = re.compile(r" /\* pgshift then ([0-9 ]*)")
_VERSION = re.compile(r"\d{14}")


def _schema_word(schema: str) -> str:
    """The schema as one word that cannot end the comment: itself, or its hex digits."""
    return schema if _SAFE_SCHEMA.fullmatch(schema) else "x" + schema.encode().hex()


def marker(action: str, schema: str, version: str, then: Sequence[str] = ()) -> bytes:
    """The comment that opens a migration's message: `/* pgshift apply <schema> <version> */`.

    A message that carries a batch of migrations (db/execute.py) names the others in a second
    comment, `/* pgshift then <version> ... */`: they are in flight too, and `status` says so.
    The server keeps only the first 1 kB of a query's text (track_activity_query_size), so the
    versions past it are not seen; each version is kept whole or not at all.
    """
    first = f"/* pgshift {action} {_schema_word(schema)} {version} */ "
    return (first + (f"/* pgshift then {' '.join(then)} */ " if then else "")).encode()


def running_steps(session: Any, schema: str) -> dict[str, str]:
    """{version: action} of the migrations of ``schema`` that the server is running now.

    ``session`` is a text session (db/readonly.py: libpq or psycopg). Only a live session that
    is running a marked message counts, so a run that died leaves nothing behind here.
    """
    from pgshift.db.readonly import text_session

    rows = text_session(session).rows(RUNNING_QUERIES)
    return steps_in([text for (text,) in rows], schema)


#: The texts of the other live sessions' marked messages in this database (one column, query).
#: From pg_stat_get_activity, the function the pg_stat_activity view reads (named in the
#: manual's monitoring chapter), rather than the view: a fresh session (every `status` opens
#: one) spends a millisecond or two loading the view and the catalogs it joins, which is most
#: of this question's cost.
RUNNING_QUERIES = (
    "SELECT a.query FROM pg_catalog.pg_stat_get_activity(NULL) a"
    " WHERE a.datid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())"
    " AND a.state = 'active' AND a.pid <> pg_catalog.pg_backend_pid()"
    " AND a.query LIKE '/* pgshift %%'"
)


def steps_in(texts: Sequence[str | None], schema: str) -> dict[str, str]:
    """{version: action} of the migrations of ``schema`` that ``texts`` (RUNNING_QUERIES' rows)
    are running."""
    word = _schema_word(schema)
    found: dict[str, str] = {}
    for text in texts:
        match = _MARKER.match(text or "")
        if match is None or match.group(2) != word:
            continue
        found[match.group(3)] = match.group(1)
        then = _THEN.match(text or "", match.end())
        for version in then.group(1).split() if then else ():
            if _VERSION.fullmatch(version):
                found[version] = match.group(1)
    return found
