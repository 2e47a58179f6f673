"""The Rule base class and the registry of rules by their stable kebab-case code.

The registry is the one piece of module-level mutable state DESIGN.md allows: rule modules
register themselves when `load_rules` imports the `rules` package.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal, TypeVar

from pgshift.lint.finding import Severity

if TYPE_CHECKING:
    from pgshift.lint.context import FileFacts, LintContext, Stmt

Scope = Literal["statement", "file", "project", "database"]


@dataclass(frozen=True)
class Hit:
    """What a rule found; the engine adds the code, severity, file and position.

    ``at`` is a byte offset into the file (a node's location) to point the caret at; without
    it the finding points at the statement, or at ``line`` (and ``column``) when given.
    """

    message: str
    at: int | None = None
    help: str | None = None
    line: int | None = None
    column: int = 1


class Rule:
    """One check. Subclasses set the class attributes and override `check` or `check_file`.

    ``blocks``: a finding means the statement blocks reads or writes of an existing table,
    which breaks a ``@zero-downtime: true`` claim.  ``rewrites``: it rewrites or scans a whole
    table, so its duration grows with the table.  ``destructive``: it loses data or schema.
    """

    code: ClassVar[str]
    severity: ClassVar[Severity] = "error"
    summary: ClassVar[str]
    help: ClassVar[str] = ""
    scope: ClassVar[Scope] = "statement"
    nodes: ClassVar[tuple[str, ...]] = ()  # statement kinds looked at; ("*",) for all
    blocks: ClassVar[bool] = False
    rewrites: ClassVar[bool] = False
    destructive: ClassVar[bool] = False
    in_rollback: ClassVar[bool] = True  # also checked in rollback files

    def check(self, stmt: Stmt, ctx: LintContext) -> Iterable[Hit]:
        """Findings for one statement (scope "statement")."""
        return ()

    def check_file(self, facts: FileFacts) -> Iterable[Hit]:
        """Findings for a whole file (scope "file" or "project")."""
        return ()


RULES: dict[str, Rule] = {}

R = TypeVar("R", bound=type[Rule])


def register(cls: R) -> R:
    """Class decorator: add one instance of the rule under its code; codes are unique."""
    code = cls.code
    if code in RULES and type(RULES[code]) is not cls:
        raise ValueError(f"two lint rules use the code {code!r}")
    RULES[code] = cls()
    return cls


def load_rules() -> dict[str, Rule]:
    """Every rule, importing the rule modules on first use."""
    from pgshift.lint import rules

    rules.load_all()
    return RULES
