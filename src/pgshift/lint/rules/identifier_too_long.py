"""Rule identifier-too-long: names over 63 bytes, which PostgreSQL silently truncates.

The parser itself truncates identifiers (with only a NOTICE), so the parse tree never shows
a long name: this rule reads the scanner's identifier tokens of the statement instead.
"""

from __future__ import annotations

from collections.abc import Iterator

from pglast.parser import scan

from pgshift.lint.context import LintContext, Stmt
from pgshift.lint.registry import Hit, Rule, register

MAX_BYTES = 63  # NAMEDATALEN - 1


def _may_hold_long_name(sql: str) -> bool:
    """Cheap exact pre-check: an unquoted identifier contains no whitespace."""
    return '"' in sql or any(len(word.encode("utf-8")) > MAX_BYTES for word in sql.split())


@register
class IdentifierTooLong(Rule):
    code = "identifier-too-long"
    severity = "warning"
    category = "failure"
    summary = "a name longer than 63 bytes is silently cut, so two names can collide"
    help = "shorten the name to 63 bytes or less"
    nodes = ("*",)

    def check(self, stmt: Stmt, ctx: LintContext) -> Iterator[Hit]:
        statement = stmt.statement
        sql = statement.sql
        if not _may_hold_long_name(sql):
            return
        seen: set[str] = set()
        for token in scan(sql):
            if token.name != "IDENT":
                continue
            raw = sql[token.start : token.end + 1]
            name = raw[1:-1].replace('""', '"') if raw.startswith('"') else raw.lower()
            size = len(name.encode("utf-8"))
            if size <= MAX_BYTES or name in seen:
                continue
            seen.add(name)
            before = sql[: token.start]
            newline = before.rfind("\n")
            line = statement.line + before.count("\n")
            column = token.start - newline if newline >= 0 else statement.column + token.start
            kept = name.encode("utf-8")[:MAX_BYTES].decode("utf-8", errors="ignore")
            yield Hit(
                f"identifier {name[:24]}... is {size} bytes long: PostgreSQL keeps only the"
                f" first {MAX_BYTES}, so it is stored as {kept!r} and a later statement naming"
                " it in full may reach another object",
                line=line,
                column=column,
            )
