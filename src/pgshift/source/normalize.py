"""Queries with their constants replaced by $n placeholders, as pg_stat_statements shows them.

Why: health reports the queries of blocked and long-running sessions, and a query's literals are
the application's data (a card number in an INSERT, a password in ALTER ROLE). PostgreSQL's own
parser (pglast's ``normalize``, libpg_query's pg_query_normalize) replaces every constant, and
its scanner finds the comments, which may carry data too and are dropped. A text the parser
cannot read (cut short by track_activity_query_size, or not SQL) cannot be masked, so it is
withheld rather than shown.
"""

from __future__ import annotations

#: What stands in for a query that cannot be normalised.
WITHHELD = "<query hidden: it does not parse, so its values cannot be masked>"
_COMMENTS = frozenset({"SQL_COMMENT", "C_COMMENT"})


def normalize_query(text: str) -> str:
    """``text`` with every constant a ``$n`` placeholder and without comments; WITHHELD when it
    does not parse. An empty text stays empty."""
    if not text.strip():
        return text
    from pglast.parser import ParseError, normalize, scan

    try:
        normal = normalize(text)
        tokens = scan(normal)
    except ParseError:
        return WITHHELD
    kept: list[str] = []
    at = 0
    for token in tokens:
        if token.name in _COMMENTS:
            kept.append(normal[at : token.start])
            at = token.end + 1
    kept.append(normal[at:])
    return " ".join("".join(kept).split())


__all__ = ["WITHHELD", "normalize_query"]
