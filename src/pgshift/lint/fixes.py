"""Mechanical safe forms of unsafe statements (the `fix` of a finding), shown as unified diffs.

Why it is shaped this way: a fix edits the author's own text at the spans the parse tree
points at (a keyword the scanner finds, a constraint's location, the statement's end), so the
comments and layout around the change survive; only statements that are new (the concurrent
index, the follow-up VALIDATE) are deparsed from a tree built here, with pglast's printer,
so their identifiers are quoted the way PostgreSQL reads them back. A statement the fixers do
not fully understand (several subcommands, index options they would drop) gets no fix: a
wrong fix is worse than none. pglast's Python AST is built only for a finding that has a fixer.

Three forms, one per rule:

* require-concurrent-index: ``CREATE INDEX`` -> ``CREATE INDEX CONCURRENTLY``;
* constraint-missing-not-valid: ``ADD CONSTRAINT ... NOT VALID`` here, and
  ``ALTER TABLE ... VALIDATE CONSTRAINT`` in a new migration after this one (validating in the
  same transaction would keep the lock, which the rule reports);
* unique-constraint-without-index: ``CREATE UNIQUE INDEX CONCURRENTLY`` then
  ``ADD CONSTRAINT ... UNIQUE / PRIMARY KEY USING INDEX``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import PurePath
from typing import Any

from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.finding import Fix

CONCURRENT_INDEX = "require-concurrent-index"
NOT_VALID = "constraint-missing-not-valid"
USING_INDEX = "unique-constraint-without-index"
_CONTEXT_LINES = 2
_MAX_NAME = 63  # NAMEDATALEN - 1: PostgreSQL truncates longer names


Edit = tuple[str, str | None, str]  # (replacement statement, follow-up SQL, summary)
Fixer = Callable[[Any, str, LintContext], Edit | None]


def fix_for(code: str, stmt: Stmt, ctx: LintContext) -> Fix | None:
    """The fix of a finding of rule ``code`` on ``stmt``, or None when it has no mechanical one."""
    fixer = _FIXERS.get(code)
    if fixer is None:
        return None
    from pglast import parse_sql
    from pglast.parser import ParseError

    sql = stmt.statement.sql
    try:
        (raw,) = parse_sql(sql)
    except (ParseError, ValueError):
        return None
    edit = fixer(raw.stmt, sql, ctx)
    if edit is None:
        return None
    replacement, follow_up, summary = edit
    hunks = _hunks(ctx.text, stmt, replacement)
    if hunks is None:
        return None
    if follow_up is None:
        return Fix(summary, sql, replacement, hunks)
    text = _follow_up_text(ctx.file, summary, follow_up)
    return Fix(summary, sql, replacement, hunks, text, _follow_up_name(ctx.file, summary))


def has_fixer(code: str) -> bool:
    return code in _FIXERS


# -- the diff ----------------------------------------------------------------------------------


def _offset(text: str, line: int, column: int) -> int:
    """The string index of 1-based (line, column) in ``text``."""
    index = 0
    for _ in range(line - 1):
        found = text.find("\n", index)
        if found < 0:
            return len(text)
        index = found + 1
    return index + column - 1


def _hunks(text: str, stmt: Stmt, replacement: str) -> str | None:
    sql = stmt.statement.sql
    start = _offset(text, stmt.statement.line, stmt.statement.column)
    if text[start : start + len(sql)] != sql:  # positions disagree: do not guess
        return None
    fixed = text[:start] + replacement + text[start + len(sql) :]
    lines = difflib.unified_diff(
        text.splitlines(keepends=True), fixed.splitlines(keepends=True), n=_CONTEXT_LINES
    )
    out = [line if line.endswith("\n") else line + "\n" for line in list(lines)[2:]]
    return "".join(out)


def _follow_up_text(file: str, summary: str, sql: str) -> str:
    """A complete migration: a header that validates as written, then the statement."""
    what = summary[:1].upper() + summary[1:]
    return (
        f"-- Description: {what}, added NOT VALID by {PurePath(file).stem}\n"
        "-- @zero-downtime: true\n"
        "-- @risk-level: low\n"
        "\n"
        f"{sql}\n"
    )


def _follow_up_name(file: str, what: str) -> str:
    """A migration one second after this file's version, so that it sorts right after it."""
    from pgshift.source.naming import parse_file_name, slugify

    slug = slugify(what)[:80] or "follow_up"
    try:
        version = parse_file_name(PurePath(file).name).version
        moment = datetime.strptime(version, "%Y%m%d%H%M%S") + timedelta(seconds=1)
        stamp = f"{moment:%Y%m%d%H%M%S}"
    except ValueError:
        stamp = "YYYYMMDDHHMMSS"
    return f"{stamp}_{slug}.sql"


# -- helpers over pglast's AST -----------------------------------------------------------------


def _char(sql: str, byte_offset: int) -> int:
    """A parse-tree location (UTF-8 bytes) as a string index."""
    if sql.isascii():
        return byte_offset
    return len(sql.encode("utf-8")[:byte_offset].decode("utf-8", errors="ignore"))


def _deparse(node: Any) -> str:
    from pglast.stream import RawStream

    return str(RawStream()(node))


def _quoted(name: str) -> str:
    from pglast.stream import maybe_double_quote_name

    return str(maybe_double_quote_name(name))


def _single_command(node: Any) -> Any | None:
    """The only subcommand of an ALTER TABLE, or None (several, or not an ALTER TABLE)."""
    from pglast import ast

    if not isinstance(node, ast.AlterTableStmt) or not node.cmds or len(node.cmds) != 1:
        return None
    return node.cmds[0]


def _keys(constraint: Any) -> list[str]:
    return [str(k.sval) for k in constraint.keys or ()]


def _generated_name(table: str, columns: list[str], suffix: str) -> str:
    """The name PostgreSQL would give (table_col1_col2_suffix), cut to the name limit."""
    base = "_".join([table, *columns])
    return f"{base[: _MAX_NAME - len(suffix) - 1]}_{suffix}"


# -- one fixer per rule ------------------------------------------------------------------------


def _concurrently(node: Any, sql: str, _: LintContext) -> Edit | None:
    """Insert CONCURRENTLY right after the INDEX keyword, found with the scanner."""
    from pglast import ast
    from pglast.parser import scan

    if not isinstance(node, ast.IndexStmt) or node.concurrent:
        return None
    keyword = next((t for t in scan(sql) if t.name == "INDEX"), None)
    if keyword is None:
        return None
    end = keyword.end + 1  # the scanner's end is inclusive
    return f"{sql[:end]} CONCURRENTLY{sql[end:]}", None, "build the index concurrently"


def _not_valid(node: Any, sql: str, _: LintContext) -> Edit | None:
    """ADD ... NOT VALID here (named, so it can be validated), VALIDATE in the next migration."""
    from pglast import ast, enums

    cmd = _single_command(node)
    if cmd is None or cmd.subtype != enums.AlterTableType.AT_AddConstraint:
        return None
    con = cmd.def_
    kinds = (enums.ConstrType.CONSTR_FOREIGN, enums.ConstrType.CONSTR_CHECK)
    if not isinstance(con, ast.Constraint) or con.contype not in kinds or con.skip_validation:
        return None
    text = sql.rstrip()
    name = con.conname
    if name is None:
        if con.contype == enums.ConstrType.CONSTR_FOREIGN:
            columns = [str(a.sval) for a in con.fk_attrs or ()]
            name = _generated_name(node.relation.relname, columns, "fkey")
        else:
            name = _generated_name(node.relation.relname, [], "check")
        at = _char(sql, con.location or 0)
        text = f"{text[:at]}CONSTRAINT {_quoted(name)} {text[at:]}"
    validate = ast.AlterTableStmt(
        relation=node.relation,
        cmds=(
            ast.AlterTableCmd(
                subtype=enums.AlterTableType.AT_ValidateConstraint,
                name=name,
                behavior=enums.DropBehavior.DROP_RESTRICT,
            ),
        ),
        objtype=enums.ObjectType.OBJECT_TABLE,
    )
    return f"{text} NOT VALID", f"{_deparse(validate)};", f"validate {name}"


def _using_index(node: Any, sql: str, _: LintContext) -> Edit | None:
    """CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT ... USING INDEX, for plain keys."""
    from pglast import ast, enums

    cmd = _single_command(node)
    if cmd is None or cmd.subtype != enums.AlterTableType.AT_AddConstraint:
        return None
    con = cmd.def_
    kinds = {enums.ConstrType.CONSTR_UNIQUE: "key", enums.ConstrType.CONSTR_PRIMARY: "pkey"}
    if not isinstance(con, ast.Constraint) or con.contype not in kinds or con.indexname:
        return None
    if con.including or con.options or con.indexspace or con.where_clause or not con.keys:
        return None  # index options this form would have to carry over: no mechanical fix
    keys = _keys(con)
    primary = con.contype == enums.ConstrType.CONSTR_PRIMARY
    name = con.conname or _generated_name(
        node.relation.relname, [] if primary else keys, kinds[con.contype]
    )
    index = ast.IndexStmt(
        idxname=name,
        relation=node.relation,
        accessMethod="btree",
        indexParams=tuple(
            ast.IndexElem(
                name=key,
                ordering=enums.SortByDir.SORTBY_DEFAULT,
                nulls_ordering=enums.SortByNulls.SORTBY_NULLS_DEFAULT,
            )
            for key in keys
        ),
        unique=True,
        nulls_not_distinct=bool(con.nulls_not_distinct),
        concurrent=True,
    )
    attach = ast.AlterTableStmt(
        relation=node.relation,
        cmds=(
            ast.AlterTableCmd(
                subtype=enums.AlterTableType.AT_AddConstraint,
                def_=ast.Constraint(
                    contype=con.contype,
                    conname=name,
                    indexname=name,
                    deferrable=con.deferrable,
                    initdeferred=con.initdeferred,
                ),
                behavior=enums.DropBehavior.DROP_RESTRICT,
            ),
        ),
        objtype=enums.ObjectType.OBJECT_TABLE,
    )
    return f"{_deparse(index)};\n{_deparse(attach)}", None, "build the unique index concurrently"


_FIXERS: dict[str, Fixer] = {
    CONCURRENT_INDEX: _concurrently,
    NOT_VALID: _not_valid,
    USING_INDEX: _using_index,
}
