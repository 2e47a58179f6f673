"""Splitting SQL into located Statements, each classified by PostgreSQL's own parser.

pglast (libpg_query) is the real PostgreSQL grammar, so dollar-quoted bodies, strings and
comments are never mistaken for statement boundaries, and the classification follows what
the server itself will refuse.

pglast 8 reports every position (``RawStmt.stmt_location``/``stmt_len``, scanner tokens and
``ParseError.args[1]``) as an index into the *Python string*, already converted from
libpg_query's UTF-8 byte offsets; ``stmt_len == 0`` means "up to the end of the text".
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

from pglast import ast, enums
from pglast.parser import ParseError, Token, parse_sql, scan, split

from pgshift.errors import Problem
from pgshift.model import Statement

_COMMENT_TOKENS = frozenset({"SQL_COMMENT", "C_COMMENT"})
IGNORE_MARKER = "pgshift-ignore:"

_FALSE_WORDS = frozenset({"false", "off", "no", "0", "f", "n"})


class LineIndex:
    """Turns a character index of a text into a 1-based (line, column).

    CRLF and a lone CR each end one line, as in every editor, so that a file saved on
    Windows reports the same lines as the header parser (which normalises them).
    """

    def __init__(self, text: str) -> None:
        starts = [0]
        i, n = 0, len(text)
        while i < n:
            ch = text[i]
            if ch == "\r":
                if i + 1 < n and text[i + 1] == "\n":
                    i += 1
                starts.append(i + 1)
            elif ch == "\n":
                starts.append(i + 1)
            i += 1
        self._starts = starts

    def line(self, index: int) -> int:
        return bisect.bisect_right(self._starts, index)

    def position(self, index: int) -> tuple[int, int]:
        line = self.line(index)
        return line, index - self._starts[line - 1] + 1

    def line_start(self, line: int) -> int:
        return self._starts[line - 1]


def _def_bool(elem: Any, default: bool = True) -> bool:
    """The boolean of a DefElem the way PostgreSQL's defGetBoolean reads it."""
    arg = getattr(elem, "arg", None)
    if arg is None:
        return default
    if isinstance(arg, ast.Boolean):
        return bool(arg.boolval)
    if isinstance(arg, ast.Integer):
        return bool(arg.ival)
    if isinstance(arg, ast.String):
        return str(arg.sval).lower() not in _FALSE_WORDS
    return default


def _option(options: Sequence[Any] | None, name: str, default: bool) -> bool:
    for elem in options or ():
        if getattr(elem, "defname", None) == name:
            return _def_bool(elem)
    return default


def _names(items: Sequence[Any]) -> list[str]:
    return [str(item.sval) for item in items if isinstance(item, ast.String)]


def _concurrent_index(node: Any) -> tuple[str | None, str] | None:
    if isinstance(node, ast.IndexStmt):
        if not node.idxname:
            return None
        schema = node.relation.schemaname if node.relation is not None else None
        return (schema or None), str(node.idxname)
    if isinstance(node, ast.DropStmt) and node.objects and len(node.objects) == 1:
        names = _names(node.objects[0])
        if names:
            return (names[-2] if len(names) >= 2 else None), names[-1]
    return None


def _refused_in_transaction(node: Any) -> bool:
    """True when PostgreSQL calls PreventInTransactionBlock for this statement.

    Kept to what the server really refuses: running a statement outside a transaction
    needlessly loses atomicity, so when in doubt (a subscription's slot, a partitioned
    table) only the statically knowable cases are listed.
    """
    if isinstance(node, ast.IndexStmt | ast.DropStmt):
        if isinstance(node, ast.DropStmt) and node.removeType != enums.ObjectType.OBJECT_INDEX:
            return False
        return bool(node.concurrent)
    if isinstance(node, ast.ReindexStmt):
        whole = node.kind in (
            enums.ReindexObjectType.REINDEX_OBJECT_SCHEMA,
            enums.ReindexObjectType.REINDEX_OBJECT_SYSTEM,
            enums.ReindexObjectType.REINDEX_OBJECT_DATABASE,
        )
        return whole or _option(node.params, "concurrently", False)
    if isinstance(node, ast.VacuumStmt):
        return bool(node.is_vacuumcmd)  # plain ANALYZE is fine inside a transaction
    if isinstance(node, ast.ClusterStmt):
        return node.relation is None  # CLUSTER of every table commits per table
    if isinstance(
        node,
        ast.CreatedbStmt
        | ast.DropdbStmt
        | ast.CreateTableSpaceStmt
        | ast.DropTableSpaceStmt
        | ast.AlterSystemStmt
        | ast.DropSubscriptionStmt,  # refused when it drops a slot, which is the default
    ):
        return True
    if isinstance(node, ast.AlterDatabaseStmt):
        return any(getattr(o, "defname", None) == "tablespace" for o in node.options or ())
    if isinstance(node, ast.DiscardStmt):
        return node.target == enums.DiscardMode.DISCARD_ALL
    if isinstance(node, ast.CreateSubscriptionStmt):
        connect = _option(node.options, "connect", True)
        return _option(node.options, "create_slot", connect)
    if isinstance(node, ast.AlterSubscriptionStmt):
        kind = node.kind.name if node.kind is not None else ""
        if kind.startswith("ALTER_SUBSCRIPTION_REFRESH"):
            return True
        if kind.endswith("_PUBLICATION"):
            return _option(node.options, "refresh", True)
        return False
    if isinstance(node, ast.AlterTableStmt):
        for cmd in node.cmds or ():
            partition = getattr(cmd, "def_", None)
            if cmd.subtype == enums.AlterTableType.AT_DetachPartition and getattr(
                partition, "concurrent", False
            ):
                return True
        return False
    if isinstance(node, ast.TransactionStmt):
        return node.kind in (
            enums.TransactionStmtKind.TRANS_STMT_COMMIT_PREPARED,
            enums.TransactionStmtKind.TRANS_STMT_ROLLBACK_PREPARED,
        )
    return False


def _ignore_codes(comment: str) -> tuple[str, ...]:
    """Codes named by one comment's text, or () when it is not a pgshift-ignore comment."""
    body = comment[2:-2] if comment.startswith("/*") else comment[2:]
    body = body.strip()
    if not body.lower().startswith(IGNORE_MARKER):
        return ()
    entries = (entry.strip() for entry in body[len(IGNORE_MARKER) :].split(","))
    return tuple(entry for entry in entries if entry)


def _ignores_before(
    text: str, tokens: Sequence[Token], first: int, lines: LineIndex
) -> tuple[str, ...]:
    """Codes from the comment lines directly above the token ``tokens[first]``.

    Only comments that start their own line count, so a trailing ``-- pgshift-ignore`` after
    the previous statement's semicolon stays with that statement; a blank line breaks the run.
    """
    codes: list[str] = []
    below = lines.line(tokens[first].start)
    i = first - 1
    while i >= 0 and tokens[i].name in _COMMENT_TOKENS:
        token = tokens[i]
        end_line = lines.line(token.end)
        start_line = lines.line(token.start)
        own_line = not text[lines.line_start(start_line) : token.start].strip()
        if end_line < below - 1 or not own_line:
            break
        codes[:0] = _ignore_codes(text[token.start : token.end + 1])
        below = start_line
        i -= 1
    return tuple(dict.fromkeys(codes))


def _error_problem(text: str, file: str, exc: ParseError, lines: LineIndex) -> Problem:
    message = str(exc.args[0]) if exc.args else "syntax error"
    index = exc.args[1] if len(exc.args) > 1 else None
    if index is None:
        index = _locate_error(text, message)
    line, column = lines.position(index)
    return Problem(file, line, message, column)


def _locate_error(text: str, message: str) -> int:
    """Where to point when PostgreSQL gave no position (mostly "at end of input")."""
    if "end of input" not in message:
        try:
            slices = split(text, with_parser=False, only_slices=True)
        except ParseError:
            slices = ()
        for piece in slices:
            try:
                parse_sql(text[piece])
            except ParseError as exc:
                offset = exc.args[1] if len(exc.args) > 1 else None
                return int(piece.start) + (offset if isinstance(offset, int) else 0)
    stripped = text.rstrip()
    return len(stripped) if stripped else 0


def split_statements(text: str, file: str) -> tuple[tuple[Statement, ...], list[Problem]]:
    """Split ``text`` into Statements located by line and column, or report its syntax error.

    ``Statement.sql`` runs from the statement's first token to its last, so leading comments
    and the trailing semicolon are not part of it; the server sees exactly the author's text.
    """
    lines = LineIndex(text)
    try:
        raws = parse_sql(text)
    except ParseError as exc:
        return (), [_error_problem(text, file, exc, lines)]
    tokens = list(scan(text)) if raws else []
    starts = [token.start for token in tokens]
    statements: list[Statement] = []
    for index, raw in enumerate(raws):
        begin = int(raw.stmt_location or 0)
        end = begin + int(raw.stmt_len) if raw.stmt_len else len(text)
        lo = bisect.bisect_left(starts, begin)
        hi = bisect.bisect_left(starts, end)
        inside = [i for i in range(lo, hi) if tokens[i].name not in _COMMENT_TOKENS]
        if inside:
            first_token, last_token = inside[0], inside[-1]
            start, stop = tokens[first_token].start, tokens[last_token].end + 1
            ignore = _ignores_before(text, tokens, first_token, lines)
        else:  # cannot happen for a parsed statement; keep the raw span rather than crash
            start, stop, ignore = begin, end, ()
        node = raw.stmt
        line, column = lines.position(start)
        refused = _refused_in_transaction(node)
        # Only IndexStmt/DropStmt refusals are concurrent index builds or drops.
        concurrent = refused and isinstance(node, ast.IndexStmt | ast.DropStmt)
        statements.append(
            Statement(
                index=index,
                sql=text[start:stop],
                line=line,
                column=column,
                kind=type(node).__name__,
                transactional=not refused,
                transaction_control=isinstance(node, ast.TransactionStmt),
                concurrent_index=_concurrent_index(node) if concurrent else None,
                ignore=ignore,
            )
        )
    return tuple(statements), []
