"""Linting each file while the loader parses it, so its parse tree is read once (a cold read).

Why it is shaped this way: the statement rules of a file need its parse tree and what the
migrations before it did (the project state), and nothing else; the file-level rules need the
file's Migration, which exists only once the folder is read and ordered. So the loader hands
each file to `parsed` as it parses it, in file-name order, and the statement rules run then;
the file-level rules run in `findings`, after ordering. Name order is plan order unless a
dependency points forward: `findings` checks that the forward files fed are exactly the
plan's, in its order, and gives None otherwise, so that the caller lints the usual way. A
helper process that parses the later files first learns what the earlier ones did
(`learn`), and sends its passes back (`export`, `absorb`).

Nothing is imported (not the parser, not the rules) until a file is handed over: a command
whose files all come from the memo never pays for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pgshift.lint.context import ProjectState
    from pgshift.lint.engine import FilePass, Linter
    from pgshift.lint.finding import Finding
    from pgshift.model import Header, Migration, Statement

Exported = tuple[dict[str, "FilePass"], list[str]]


class LintAhead:
    """Statement passes of the files as they are parsed; the findings once they are ordered."""

    def __init__(self, pg_major: int, *, fixes: bool = True) -> None:
        self.pg_major = pg_major
        self.fixes = fixes
        self._linter: Linter | None = None
        self._project: ProjectState | None = None
        self._passes: dict[str, FilePass] = {}
        self._forward: list[str] = []  # forward files in the order they were linted

    @property
    def linter(self) -> Linter:
        if self._linter is None:
            from pgshift.lint.engine import Linter

            self._linter = Linter(self.pg_major, fixes=self.fixes)
        return self._linter

    @property
    def project(self) -> ProjectState:
        if self._project is None:
            from pgshift.lint.context import ProjectState

            self._project = ProjectState()
        return self._project

    def learn(self, text: str, file: str) -> None:
        """A forward file another process lints: only what it did, for the files after it."""
        self.linter.learn_text(text, file, self.project)

    def parsed(
        self,
        text: str,
        file: str,
        header: Header,
        statements: Sequence[Statement],
        trees: Sequence[Mapping[str, Any]],
        *,
        rollback: bool,
    ) -> None:
        """Run the statement rules over one file just parsed (``trees``: one per statement)."""
        from pgshift.lint import tree
        from pgshift.lint.context import ProjectState, Stmt

        stmts = [Stmt(s, *tree.unwrap(t)) for s, t in zip(statements, trees, strict=True)]
        project = ProjectState() if rollback else self.project  # a rollback teaches nothing
        self._passes[file] = self.linter.statement_pass(
            text, file, header, statements, stmts, rollback=rollback, project=project
        )
        if not rollback:
            self._forward.append(file)

    def export(self) -> Exported:
        """What this process linted, to hand to the one that orders the folder."""
        return self._passes, self._forward

    def absorb(self, exported: Exported) -> None:
        """Take a helper's passes; its files come after this process's in name order."""
        passes, forward = exported
        self._passes.update(passes)
        self._forward.extend(forward)

    def findings(
        self, migrations: Sequence[Migration], bad_files: frozenset[str]
    ) -> list[list[Finding]] | None:
        """Each migration's findings (with its rollback's), in plan order; None when the files
        were not linted in plan order, or not all of them (the caller then lints them)."""
        if not migrations or self._forward != [str(m.path) for m in migrations]:
            return None
        scripts = [(m, s) for m in migrations for s in (m, m.rollback) if s is not None]
        if any(str(s.path) not in self._passes for _, s in scripts):
            return None
        found: dict[str, list[Finding]] = {m.version: [] for m in migrations}
        for m, script in scripts:
            done = self._passes[str(script.path)]
            has_problems = str(script.path) in bad_files
            found[m.version] += self.linter.file_pass(
                done, script.header, script.statements, migration=m, has_problems=has_problems
            )
        return [found[m.version] for m in migrations]
