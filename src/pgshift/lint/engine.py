"""Runs the rules over files and projects: statement rules, ignores, then file-level claims.

Order matters: ignores are applied before the metadata claims are checked, so a statement the
author vouched for (``-- pgshift-ignore: code``) does not break ``@zero-downtime: true``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace

from pglast.parser import ParseError, parse_sql_json

from pgshift.concurrency import Helper
from pgshift.lint import LATEST_MAJOR, fixes, tree
from pgshift.lint.context import FileFacts, LintContext, ProjectState, Stmt
from pgshift.lint.finding import Finding, problem_findings
from pgshift.lint.ignore import Ignores
from pgshift.lint.memo import LintMemo, chain_keys
from pgshift.lint.registry import Hit, Rule, load_rules
from pgshift.model import Header, Migration, Statement
from pgshift.source.sql import LineIndex

#: The ignores used by a file that used none: one shared value (frozenset() is not shared).
_NOTHING_USED: frozenset[tuple[int | None, str]] = frozenset()
#: Below this many migrations to lint, a helper costs more than it saves.
LINT_BESIDE_MIN = 100
#: The part of the migrations this process lints itself when a helper lints the rest.
_OWN_SHARE = 0.6


@dataclass(frozen=True, slots=True)
class FilePass:
    """One file after the statement rules: what they found, and the ignores they used.

    Small on purpose (no header, no statements, tuples: most files find nothing, and the
    empty tuple is shared): a cold read of a large project holds one per file.
    """

    file: str
    rollback: bool
    raw: tuple[Finding, ...]  # before ignores
    kept: tuple[Finding, ...]  # after ignores
    used: frozenset[tuple[int | None, str]]  # the ignores that silenced something


class Linter:
    """The rules, indexed by the statement kinds they look at, for one target version."""

    def __init__(self, pg_major: int = LATEST_MAJOR, *, fixes: bool = True) -> None:
        self.pg_major = pg_major
        # Building a fix re-parses its statement into pglast's Python AST; an output that
        # shows no fix (quiet text, GitHub annotations) need not pay for it.
        self.fixes = fixes
        self.rules = load_rules()
        self.by_kind: dict[str, list[Rule]] = {}
        self.every: list[Rule] = []
        self.file_rules: list[Rule] = []
        for rule in self.rules.values():
            if rule.scope == "statement":
                if "*" in rule.nodes:
                    self.every.append(rule)
                for kind in rule.nodes:
                    self.by_kind.setdefault(kind, []).append(rule)
            elif rule.scope in ("file", "project"):
                self.file_rules.append(rule)

    # -- one file ------------------------------------------------------------------------------

    def lint_file(
        self,
        text: str,
        file: str,
        header: Header,
        statements: Sequence[Statement],
        *,
        rollback: bool = False,
        project: ProjectState | None = None,
        migration: Migration | None = None,
        has_problems: bool = False,
    ) -> list[Finding]:
        """Every finding of one file (migration or rollback), ignores applied."""
        stmts = _statements_with_trees(text, statements)
        done = self.statement_pass(
            text, file, header, statements, stmts, rollback=rollback, project=project
        )
        return self.file_pass(
            done, header, statements, migration=migration, has_problems=has_problems
        )

    def statement_pass(
        self,
        text: str,
        file: str,
        header: Header,
        statements: Sequence[Statement],
        stmts: Sequence[Stmt],
        *,
        rollback: bool = False,
        project: ProjectState | None = None,
    ) -> FilePass:
        """The statement rules over one file (``stmts``: its statements with their trees),
        learning into ``project`` what it did; the file-level rules come after (file_pass).

        Split in two because the statement rules need the parse trees and the project state
        of the migrations before, while the file-level rules need the file's Migration, which
        exists only once the whole folder is read and ordered.
        """
        ctx = LintContext(
            file,
            text,
            pg_major=self.pg_major,
            rollback=rollback,
            transactional=header.transaction and all(s.transactional for s in statements),
            project=project,
        )
        ignores = Ignores(file, statements, header)
        raw: list[Finding] = []
        kept: list[Finding] = []
        positions = _Positions(text, ctx)
        ctx.statements = tuple(stmts)
        for stmt in ctx.statements:
            for rule in self._statement_rules(stmt.kind, rollback):
                for hit in rule.check(stmt, ctx):
                    finding = _finding(rule, hit, file, *positions.of(hit, stmt))
                    if rule.code in SERVED_BY_EXPAND and not rollback:
                        finding = _served(finding, header)
                    if self.fixes and fixes.has_fixer(rule.code):
                        finding = replace(finding, fix=fixes.fix_for(rule.code, stmt, ctx))
                    raw.append(finding)
                    if not ignores.suppressed(stmt.statement.index, rule.code):
                        kept.append(finding)
            _learn(stmt, ctx)
        used = frozenset(ignores.used) if ignores.used else _NOTHING_USED
        return FilePass(file, rollback, tuple(raw), tuple(kept), used)

    def file_pass(
        self,
        done: FilePass,
        header: Header,
        statements: Sequence[Statement],
        *,
        migration: Migration | None = None,
        has_problems: bool = False,
    ) -> list[Finding]:
        """The file's findings: its statement pass's, then the file- and project-level rules'
        and the ignores that silenced nothing (``header`` and ``statements`` are the file's)."""
        ignores = Ignores(done.file, statements, header)
        ignores.used = set(done.used)
        facts = FileFacts(
            file=done.file,
            header=header,
            statements=tuple(statements),
            rollback=done.rollback,
            kept=done.kept,
            raw=done.raw,
            migration=migration,
            has_problems=has_problems,
        )
        kept = list(done.kept)
        kept.extend(self._file_findings(facts, ignores))
        kept.extend(ignores.unused(self.rules))
        return kept

    def learn_text(self, text: str, file: str, project: ProjectState) -> None:
        """What a file's statements did, for the files after it, from its text alone (a
        helper that did not read the file itself); unlinted, like learn_file."""
        try:
            parsed = json.loads(parse_sql_json(text)).get("stmts", [])
        except ParseError:
            return  # it did nothing; its own reader reports it
        ctx = LintContext(file, text, pg_major=self.pg_major, project=project)
        for raw in parsed:
            kind, node = tree.unwrap(raw.get("stmt", {}))
            learner = _LEARNERS.get(kind)
            if learner is not None:
                learner(node, ctx)

    def _statement_rules(self, kind: str, rollback: bool) -> Iterator[Rule]:
        """The rules that look at this kind of statement, then those that look at every one."""
        rules = self.by_kind.get(kind, [])
        for rule in (*rules, *self.every) if self.every else rules:
            if not rollback or rule.in_rollback:
                yield rule

    def _file_findings(self, facts: FileFacts, ignores: Ignores) -> Iterator[Finding]:
        """The file- and project-level rules' findings, after the statement ignores are known."""
        for rule in self.file_rules:
            for hit in rule.check_file(facts):
                if not ignores.suppressed(None, rule.code):
                    yield _finding(rule, hit, facts.file, hit.line or 1, hit.column)

    # -- a project -----------------------------------------------------------------------------

    def learn_file(
        self,
        text: str,
        file: str,
        header: Header,
        statements: Sequence[Statement],
        project: ProjectState,
    ) -> None:
        """What a file teaches later files (tables it made, constraints it validated), unlinted.

        `up` judges only the files it is about to apply; the applied ones before them still
        count for what they did, but checking them again would cost most of a deploy's time.
        """
        ctx = LintContext(file, text, pg_major=self.pg_major, project=project)
        ctx.statements = tuple(_statements_with_trees(text, statements))
        for stmt in ctx.statements:
            _learn(stmt, ctx)

    def lint_migrations(
        self,
        migrations: Iterable[Migration],
        bad_files: frozenset[str] = frozenset(),
        *,
        only: Collection[str] | None = None,
        memo: LintMemo | None = None,
        helper: Helper | None = None,
    ) -> list[Finding]:
        """Lint migrations (and their rollbacks) in plan order, sharing what earlier ones did.

        ``only``: the versions to lint; the others are only learned from (learn_file).
        ``memo``: findings of earlier runs by chain key (lint/memo.py); a migration found there
        is not linted again, and is only learned from when a later one has to be linted.
        ``helper`` (concurrency.py): another core lints the later migrations meanwhile,
        after learning from every earlier one, so it finds exactly what this one would.
        """
        ordered = list(migrations)
        keys: list[str] = []
        known: list[list[Finding] | None] = [None] * len(ordered)
        if memo is not None and only is None:
            keys = chain_keys(ordered, bad_files, pg_major=self.pg_major, fixes=self.fixes)
            known = [memo.get(key) for key in keys]
        todo = [
            i
            for i, m in enumerate(ordered)
            if known[i] is None and (only is None or m.version in only)
        ]
        linted = self._lint_some(ordered, todo, bad_files, helper)
        findings: list[Finding] = []
        for i, cached in enumerate(known):
            found = linted.get(i) if cached is None else cached
            if cached is None and found is not None and keys and memo is not None:
                memo.put(keys[i], found)
            findings.extend(found or ())
        if memo is not None:
            memo.finish()
        return findings

    def _lint_some(
        self,
        ordered: list[Migration],
        todo: list[int],
        bad_files: frozenset[str],
        helper: Helper | None,
    ) -> dict[int, list[Finding]]:
        """The findings of the migrations at ``todo`` (indexes into ``ordered``), by index.

        With a helper, this process lints the first part and the helper the rest; the helper
        learns what the first part did (cheap: no rules run) before linting its own part.
        """
        project = ProjectState()
        if helper is None or len(todo) < LINT_BESIDE_MIN:
            return self._lint_range(ordered, todo, bad_files, project, 0, len(ordered))
        # Both re-parse the files they lint (the loader keeps no trees); the helper also
        # re-parses the earlier migrations to learn from them, so it takes less than half.
        cut = todo[int(len(todo) * _OWN_SHARE)]
        pending = helper(
            lambda: self._lint_range(
                ordered, [i for i in todo if i >= cut], bad_files, ProjectState(), 0, len(ordered)
            )
        )
        if pending is None:
            return self._lint_range(ordered, todo, bad_files, project, 0, len(ordered))
        try:
            mine = [i for i in todo if i < cut]
            linted = self._lint_range(ordered, mine, bad_files, project, 0, cut)
        except BaseException:
            pending.cancel()  # nobody would read what it sends: it would wait for ever
            raise
        theirs = pending.result()
        if theirs is None:  # the helper failed: go on from where this process stopped
            theirs = self._lint_range(ordered, todo, bad_files, project, cut, len(ordered))
        linted.update(theirs)
        return linted

    def _lint_range(
        self,
        ordered: list[Migration],
        todo: list[int],
        bad_files: frozenset[str],
        project: ProjectState,
        start: int,
        stop: int,
    ) -> dict[int, list[Finding]]:
        """Lint the ``todo`` migrations among ordered[start:stop]; learn from the others that
        come before the last of them (``project`` holds what ordered[:start] did)."""
        wanted = set(todo)
        last = max(todo, default=-1)
        linted: dict[int, list[Finding]] = {}
        for i in range(start, min(stop, last + 1)):
            m = ordered[i]
            if i in wanted:
                linted[i] = self._lint_migration(m, project, bad_files)
            else:
                self.learn_file(m.text, str(m.path), m.header, m.statements, project)
        return linted

    def _lint_migration(
        self, m: Migration, project: ProjectState, bad_files: frozenset[str]
    ) -> list[Finding]:
        """The findings of one migration and of its rollback file."""
        found = self.lint_file(
            m.text,
            str(m.path),
            m.header,
            m.statements,
            project=project,
            migration=m,
            has_problems=str(m.path) in bad_files,
        )
        if m.rollback is not None:
            rb = m.rollback
            found.extend(
                self.lint_file(
                    rb.text,
                    str(rb.path),
                    rb.header,
                    rb.statements,
                    rollback=True,
                    project=ProjectState(),  # a rollback teaches later files nothing
                    migration=m,
                    has_problems=str(rb.path) in bad_files,
                )
            )
        return found


#: What `@expand-contract: true` serves in two shapes instead of the statement's blocking or
#: breaking form (rewrite/expand.py): in such a migration these findings are notes, elsewhere
#: their help points at it.
SERVED_BY_EXPAND = frozenset(
    {
        "rename-column",
        "change-column-type",
        "set-not-null",
        "drop-column",
        "rename-table",
        "constraint-missing-not-valid",
        "unique-constraint-without-index",
        "add-column-rewrite",
    }
)


def _served(finding: Finding, header: Header) -> Finding:
    if header.expand_contract:
        return replace(
            finding,
            severity="note",
            message=f"{finding.message} (served in two shapes: the migration is @expand-contract)",
        )
    return replace(
        finding,
        help=f"{finding.help}; or add '-- @expand-contract: true' to the header and pgshift"
        " performs the safe form itself, serving the old and the new code until"
        " `pgshift contract`",
    )


def _finding(rule: Rule, hit: Hit, file: str, line: int, column: int) -> Finding:
    return Finding(
        code=rule.code,
        severity=hit.severity or rule.severity,
        file=file,
        line=line,
        column=column,
        message=hit.message,
        help=hit.help if hit.help is not None else rule.help,
        category=rule.category,
    )


def _statements_with_trees(text: str, statements: Sequence[Statement]) -> list[Stmt]:
    """Pair each Statement with its parse tree: the loader's, or one parser call per file."""
    if not statements:
        return []
    if all(statement.tree is not None for statement in statements):
        return [Stmt(s, *tree.unwrap(s.tree or {})) for s in statements]
    try:
        parsed = json.loads(parse_sql_json(text)).get("stmts", [])
    except ParseError:  # the loader reported it; statements would be empty anyway
        return []
    out: list[Stmt] = []
    for statement, raw in zip(statements, parsed, strict=False):
        kind, node = tree.unwrap(raw.get("stmt", {}))
        out.append(Stmt(statement, kind, node))
    return out


class _Positions:
    """Where a hit is: its own line, a character offset, or its statement's start.

    The file's LineIndex is built only when some hit gives an offset, as most files have none.
    """

    def __init__(self, text: str, ctx: LintContext) -> None:
        self._text = text
        self._ctx = ctx
        self._lines: LineIndex | None = None

    def of(self, hit: Hit, stmt: Stmt) -> tuple[int, int]:
        if hit.line is not None:
            return hit.line, hit.column
        if hit.at is not None:
            if self._lines is None:
                self._lines = LineIndex(self._text)
            return self._lines.position(self._ctx.char_index(hit.at))
        return stmt.statement.line, stmt.statement.column


def _learn(stmt: Stmt, ctx: LintContext) -> None:
    """Remember what this statement did, for the rules looking at later statements."""
    learner = _LEARNERS.get(stmt.kind)
    if learner is not None:
        learner(stmt.node, ctx)


def _learn_new_table(node: tree.Node, ctx: LintContext) -> None:
    name = tree.table(node.get("relation"))
    if name is None:
        return
    ctx.new_tables.append(name)
    ctx.project.forget_table(name)
    columns = ctx.project.table_columns(name, create=True)
    for element in node.get("tableElts") or ():
        column = element.get("ColumnDef")
        if isinstance(column, dict):
            _learn_column_type(columns, str(column.get("colname", "")), column)


def _learn_column_type(columns: dict[str, tree.ColumnType], name: str, column: tree.Node) -> None:
    declared = tree.column_type(column)
    if declared is None:
        columns.pop(name, None)
    else:
        columns[name] = declared


def _learn_table_as(node: tree.Node, ctx: LintContext) -> None:
    into: tree.Node = node.get("into") or {}
    into = into.get("IntoClause") or into
    name = tree.table(into.get("rel"))
    if name is not None:
        ctx.new_tables.append(name)


def _learn_index(node: tree.Node, ctx: LintContext) -> None:
    if node.get("idxname"):
        ctx.new_indexes.add(str(node["idxname"]))


def _learn_alter_table(node: tree.Node, ctx: LintContext) -> None:
    name = tree.table(node.get("relation"))
    if name is None:
        return
    ctx.altered_tables.append(name)
    for subtype, cmd in tree.alter_commands(node):
        if subtype in ("AT_AddColumn", "AT_AlterColumnType"):
            column = tree.column_def(cmd)
            colname = str(column.get("colname") or cmd.get("name") or "")
            _learn_column_type(ctx.project.table_columns(name, create=True), colname, column)
        elif subtype == "AT_DropColumn":
            ctx.project.table_columns(name).pop(str(cmd.get("name", "")), None)
        elif subtype == "AT_AddConstraint":
            _learn_constraint(name, tree.constraint_def(cmd), ctx)
        elif subtype == "AT_ValidateConstraint":
            constraint = str(cmd.get("name", ""))
            proven = ctx.project.pending_not_null.pop(constraint, None)
            if proven is not None:
                ctx.project.validated_not_null.append(proven)
            elif constraint not in ctx.project.other_constraints:
                ctx.project.validated_unknown.append((name, constraint))


def _learn_rename(node: tree.Node, ctx: LintContext) -> None:
    """Column types follow a renamed column or table (what is unknown stays unknown)."""
    name = tree.table(node.get("relation"))
    if name is None:
        return
    if node.get("renameType") == "OBJECT_COLUMN":
        columns = ctx.project.table_columns(name)
        declared = columns.pop(str(node.get("subname", "")), None)
        if declared is not None:
            columns[str(node.get("newname", ""))] = declared
    elif node.get("renameType") == "OBJECT_TABLE":
        moved = ctx.project.forget_table(name)
        renamed = tree.TableName(name.schema, str(node.get("newname", "")))
        ctx.project.forget_table(renamed)
        ctx.project.table_columns(renamed, create=True).update(moved)


def _learn_drop(node: tree.Node, ctx: LintContext) -> None:
    if node.get("removeType") != "OBJECT_TABLE":
        return
    for item in node.get("objects") or ():
        names = tree.strings(item.get("List", {}).get("items"))
        if names:
            schema = names[-2] if len(names) > 1 else None
            ctx.project.forget_table(tree.TableName(schema, names[-1]))


def _learn_policy(node: tree.Node, ctx: LintContext) -> None:
    name = tree.table(node.get("table"))
    if name is not None:
        ctx.project.policies.append(name)


# Statement kind -> what a later statement's rule may need to know that it did.
_LEARNERS: Mapping[str, Callable[[tree.Node, LintContext], None]] = {
    "CreateStmt": _learn_new_table,
    "CreateTableAsStmt": _learn_table_as,
    "IndexStmt": _learn_index,
    "AlterTableStmt": _learn_alter_table,
    "RenameStmt": _learn_rename,
    "DropStmt": _learn_drop,
    "CreatePolicyStmt": _learn_policy,
}


def _learn_constraint(table: tree.TableName, con: tree.Node, ctx: LintContext) -> None:
    column = _not_null_column(con)
    name = con.get("conname")
    if not isinstance(name, str):
        # An unnamed CHECK gets the name PostgreSQL gives it, which VALIDATE CONSTRAINT uses.
        checks_one = con.get("contype") == "CONSTR_CHECK" and column is not None
        name = tree.check_constraint_name(table.name, column) if checks_one and column else None
    if con.get("skip_validation") and name is not None:
        ctx.not_valid[name] = table
    if column is None:
        if name is not None:
            ctx.project.other_constraints.add(name)
    elif not con.get("skip_validation"):
        ctx.project.validated_not_null.append((table, column))
    elif name is not None:
        ctx.project.pending_not_null[name] = (table, column)


def _not_null_column(con: tree.Node) -> str | None:
    """The column a constraint proves NOT NULL: CHECK (col IS NOT NULL), or PostgreSQL 18's
    ADD CONSTRAINT name NOT NULL col; None for any other constraint."""
    if con.get("contype") == "CONSTR_CHECK":
        return not_null_check_column(con.get("raw_expr") or {})
    if con.get("contype") == "CONSTR_NOTNULL":
        keys = tree.strings(con.get("keys"))
        return keys[0] if keys else None
    return None


def not_null_check_column(expr: tree.Node) -> str | None:
    """``col IS NOT NULL`` -> "col"; anything else -> None."""
    test = expr.get("NullTest")
    if not isinstance(test, dict) or test.get("nulltesttype") != "IS_NOT_NULL":
        return None
    fields = test.get("arg", {}).get("ColumnRef", {}).get("fields")
    names = tree.strings(fields)
    return names[-1] if names else None


def lint_text(
    text: str, file: str, *, rollback: bool = False, pg_major: int = LATEST_MAJOR
) -> list[Finding]:
    """Lint one file's text on its own (an editor, a test case): header, SQL and claims."""
    from pgshift.source.header import parse_header
    from pgshift.source.sql import split_statements

    header, header_problems = parse_header(text, file, rollback=rollback)
    statements, sql_problems = split_statements(text, file)
    problems = [*header_problems, *sql_problems]
    findings = problem_findings(problems)
    findings += Linter(pg_major).lint_file(
        text, file, header, statements, rollback=rollback, has_problems=bool(problems)
    )
    return sorted(findings, key=Finding.sort_key)
