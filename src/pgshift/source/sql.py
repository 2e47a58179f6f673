"""Splitting SQL into located Statements, each classified by PostgreSQL's own parser.

pglast (libpg_query) is the real PostgreSQL grammar, so dollar-quoted bodies, strings and
comments are never mistaken for statement boundaries, and the classification follows what
the server itself will refuse.

The parse tree is read as libpg_query's JSON (``parse_sql_json``), about ten times cheaper than
building pglast's Python AST, because every command reads every file. Its ``stmt_location`` and
``stmt_len`` are UTF-8 *byte* offsets (``stmt_len`` 0 meaning "to the end"); the scanner's
tokens and ``ParseError.args[1]`` are already Python string indexes.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pglast.parser import ParseError, Token, parse_sql, parse_sql_json, scan, split

from pgshift.errors import Problem
from pgshift.model import Statement
from pgshift.rewrite.preflight_head import READ_KINDS, head_of

#: Starts every statement checksum, so that a new way of computing it gets a new prefix.
CHECKSUM_PREFIX = b"pgshift-statements-1\n"
_COMMENT_TOKENS = frozenset({"SQL_COMMENT", "C_COMMENT"})
IGNORE_MARKER = "pgshift-ignore:"

_FALSE_WORDS = frozenset({"false", "off", "no", "0", "f", "n"})

Node = Mapping[str, Any]


class LineIndex:
    """Turns a character index of a text into a 1-based (line, column).

    CRLF and a lone CR each end one line, as in every editor, so that a file saved on
    Windows reports the same lines as the header parser (which normalises them).
    """

    def __init__(self, text: str) -> None:
        starts = [0]
        if "\r" in text:
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
        else:  # the common case, without a character loop in Python
            find = text.find
            at = find("\n")
            while at != -1:
                starts.append(at + 1)
                at = find("\n", at + 1)
        self._starts = starts

    def line(self, index: int) -> int:
        return bisect.bisect_right(self._starts, index)

    def position(self, index: int) -> tuple[int, int]:
        line = self.line(index)
        return line, index - self._starts[line - 1] + 1

    def line_start(self, line: int) -> int:
        return self._starts[line - 1]


def unwrap(wrapped: Node | None) -> tuple[str, Node]:
    """{"Kind": {fields}} -> ("Kind", fields): the shape of every node in the JSON tree."""
    for kind, fields in (wrapped or {}).items():
        return str(kind), fields if isinstance(fields, Mapping) else {}
    return "", {}


def _def_bool(elem: Node, default: bool = True) -> bool:
    """The boolean of a DefElem the way PostgreSQL's defGetBoolean reads it.

    libpg_query's JSON leaves out false and zero values, hence the defaults.
    """
    kind, arg = unwrap(elem.get("arg"))
    if kind == "Boolean":
        return bool(arg.get("boolval", False))
    if kind == "Integer":
        return bool(arg.get("ival", 0))
    if kind == "String":
        return str(arg.get("sval", "")).lower() not in _FALSE_WORDS
    return default


def _option(options: Sequence[Node] | None, name: str, default: bool) -> bool:
    for wrapped in options or ():
        _, elem = unwrap(wrapped)
        if elem.get("defname") == name:
            return _def_bool(elem)
    return default


def _concurrent_index(kind: str, node: Node) -> tuple[str | None, str] | None:
    if kind == "IndexStmt":
        if not node.get("idxname"):
            return None
        relation = node.get("relation") or {}
        return (relation.get("schemaname") or None), str(node["idxname"])
    objects: Sequence[Node] = node.get("objects") or []
    if kind == "DropStmt" and len(objects) == 1:
        _, names_list = unwrap(objects[0])
        names: list[str] = []
        for item in names_list.get("items", ()):
            item_kind, fields = unwrap(item)
            if item_kind == "String":
                names.append(str(fields.get("sval", "")))
        if names:
            return (names[-2] if len(names) >= 2 else None), names[-1]
    return None


_ALWAYS_REFUSED = frozenset(
    {
        "CreatedbStmt",
        "DropdbStmt",
        "CreateTableSpaceStmt",
        "DropTableSpaceStmt",
        "AlterSystemStmt",
        "DropSubscriptionStmt",  # refused when it drops a slot, which is the default
    }
)


def _index_refused(node: Node) -> bool:
    return bool(node.get("concurrent"))


def _drop_refused(node: Node) -> bool:
    return node.get("removeType") == "OBJECT_INDEX" and bool(node.get("concurrent"))


def _reindex_refused(node: Node) -> bool:
    whole = node.get("kind") in (
        "REINDEX_OBJECT_SCHEMA",
        "REINDEX_OBJECT_SYSTEM",
        "REINDEX_OBJECT_DATABASE",
    )
    return whole or _option(node.get("params"), "concurrently", False)


def _vacuum_refused(node: Node) -> bool:
    return bool(node.get("is_vacuumcmd"))  # plain ANALYZE is fine inside a transaction


def _cluster_refused(node: Node) -> bool:
    return node.get("relation") is None  # CLUSTER of every table commits per table


def _alter_database_refused(node: Node) -> bool:
    return any(unwrap(o)[1].get("defname") == "tablespace" for o in node.get("options") or ())


def _discard_refused(node: Node) -> bool:
    return node.get("target") == "DISCARD_ALL"


def _create_subscription_refused(node: Node) -> bool:
    connect = _option(node.get("options"), "connect", True)
    return _option(node.get("options"), "create_slot", connect)


def _alter_subscription_refused(node: Node) -> bool:
    sub_kind = str(node.get("kind", ""))
    if sub_kind.startswith("ALTER_SUBSCRIPTION_REFRESH"):
        return True
    if sub_kind.endswith("_PUBLICATION"):
        return _option(node.get("options"), "refresh", True)
    return False


def _alter_table_refused(node: Node) -> bool:
    for wrapped in node.get("cmds") or ():
        _, cmd = unwrap(wrapped)
        _, partition = unwrap(cmd.get("def"))
        if cmd.get("subtype") == "AT_DetachPartition" and partition.get("concurrent"):
            return True
    return False


def _transaction_refused(node: Node) -> bool:
    return node.get("kind") in (
        "TRANS_STMT_COMMIT_PREPARED",
        "TRANS_STMT_ROLLBACK_PREPARED",
    )


def _always(_: Node) -> bool:
    return True


# Statement kind -> whether PostgreSQL refuses this one inside a transaction block; a kind
# not listed is always allowed.
_REFUSED_WHEN: Mapping[str, Callable[[Node], bool]] = {
    "IndexStmt": _index_refused,
    "DropStmt": _drop_refused,
    "ReindexStmt": _reindex_refused,
    "VacuumStmt": _vacuum_refused,
    "ClusterStmt": _cluster_refused,
    "AlterDatabaseStmt": _alter_database_refused,
    "DiscardStmt": _discard_refused,
    "CreateSubscriptionStmt": _create_subscription_refused,
    "AlterSubscriptionStmt": _alter_subscription_refused,
    "AlterTableStmt": _alter_table_refused,
    "TransactionStmt": _transaction_refused,
    **dict.fromkeys(_ALWAYS_REFUSED, _always),
}


def _refused_in_transaction(kind: str, node: Node) -> bool:
    """True when PostgreSQL calls PreventInTransactionBlock for this statement.

    Kept to what the server really refuses: running a statement outside a transaction
    needlessly loses atomicity, so when in doubt (a subscription's slot, a partitioned
    table) only the statically knowable cases are listed. One small rule per statement
    kind, looked up by kind, so each reads next to the options it depends on.
    """
    refused = _REFUSED_WHEN.get(kind)
    return refused is not None and refused(node)


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


def _char_offsets(text: str) -> Any:
    """Map libpg_query's UTF-8 byte offsets to string indexes (identity for ASCII text)."""
    if text.isascii():
        return lambda offset: offset
    encoded = text.encode("utf-8")
    return lambda offset: len(encoded[:offset].decode("utf-8", errors="ignore"))


def split_statements(text: str, file: str) -> tuple[tuple[Statement, ...], list[Problem]]:
    """Split ``text`` into Statements located by line and column, or report its syntax error.

    ``Statement.sql`` runs from the statement's first token to its last, so leading comments
    and the trailing semicolon are not part of it; the server sees exactly the author's text.
    """
    statements, problems, _ = split_and_checksum(text, file)
    return statements, problems


def split_and_checksum(
    text: str, file: str, *, trees: bool = True, tree_sink: list[Any] | None = None
) -> tuple[tuple[Statement, ...], list[Problem], str | None]:
    """split_statements, and the checksum of what would run (None when the text does not parse).

    ``trees=False`` leaves the parse trees out of the statements: a whole project's trees are
    most of the memory of reading it, and the linter parses a file again when it needs them;
    ``tree_sink`` then receives them, one per statement, for a caller that uses them at once.

    The checksum covers each statement's tokens, as the scanner gives them, and nothing else:
    comments (the header's metadata lines included), whitespace, line endings and a BOM can
    change without it changing, while any edit to what the server runs does (SPEC 1, drift).
    """
    lines = LineIndex(text)
    try:
        raws = json.loads(parse_sql_json(text)).get("stmts", [])
    except ParseError as exc:
        return (), [_error_problem(text, file, exc, lines)], None
    digest = hashlib.sha256(CHECKSUM_PREFIX)
    tokens = list(scan(text)) if raws else []
    starts = [token.start for token in tokens]
    to_char = _char_offsets(text)
    statements: list[Statement] = []
    for index, raw in enumerate(raws):
        begin_byte = int(raw.get("stmt_location", 0))
        length = int(raw.get("stmt_len", 0))
        begin = to_char(begin_byte)
        end = to_char(begin_byte + length) if length else len(text)
        lo = bisect.bisect_left(starts, begin)
        hi = bisect.bisect_left(starts, end)
        inside = [i for i in range(lo, hi) if tokens[i].name not in _COMMENT_TOKENS]
        digest.update(
            "\x1f".join(text[tokens[i].start : tokens[i].end + 1] for i in inside).encode(
                "utf-8", "surrogatepass"
            )
            + b"\x1e"
        )
        if inside:
            first_token, last_token = inside[0], inside[-1]
            start, stop = tokens[first_token].start, tokens[last_token].end + 1
            ignore = _ignores_before(text, tokens, first_token, lines)
        else:  # cannot happen for a parsed statement; keep the raw span rather than crash
            start, stop, ignore = begin, end, ()
        wrapped = raw.get("stmt") or {}
        kind, node = unwrap(wrapped)
        line, column = lines.position(start)
        refused = _refused_in_transaction(kind, node)
        # Only IndexStmt/DropStmt refusals are concurrent index builds or drops.
        concurrent = refused and kind in ("IndexStmt", "DropStmt")
        statements.append(
            Statement(
                index=index,
                sql=text[start:stop],
                line=line,
                column=column,
                kind=kind,
                transactional=not refused,
                transaction_control=kind == "TransactionStmt",
                concurrent_index=_concurrent_index(kind, node) if concurrent else None,
                ignore=ignore,
                tree=wrapped if trees else None,
                table_head=head_of(kind, node) if kind in READ_KINDS else None,
            )
        )
        if tree_sink is not None:
            tree_sink.append(wrapped)
    return tuple(statements), [], digest.hexdigest()


#: Column options a server sets on its own and other servers refuse ("unrecognized parameter"):
#: PostgreSQL 15.20 stamps every column with pg_attver, which pg_dump then dumps as
#: ``ALTER TABLE ONLY t ALTER COLUMN c SET (pg_attver=...)``.
SERVER_STAMPED_OPTIONS = frozenset({"pg_attver"})


def sets_only_stamped_options(sql: str) -> bool:
    """Whether ``sql`` is one ALTER TABLE whose every subcommand only sets column options the
    server stamped itself (SERVER_STAMPED_OPTIONS): a copy onto another server leaves it out."""
    try:
        statements = parse_sql(sql)
    except ParseError:
        return False
    if len(statements) != 1:
        return False
    stmt: Any = statements[0].stmt
    if type(stmt).__name__ != "AlterTableStmt" or not stmt.cmds:
        return False
    for cmd in stmt.cmds:
        if getattr(cmd.subtype, "name", "") != "AT_SetOptions":
            return False
        options = cmd.def_ or ()
        if not options or any(
            d.defnamespace is not None or d.defname not in SERVER_STAMPED_OPTIONS for d in options
        ):
            return False
    return True
