"""The Rule base class and the registry of rules by their stable kebab-case code.

The registry is the one piece of module-level mutable state DESIGN.md allows: rule modules
register themselves when `load_rules` imports the `rules` package.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal, TypeVar

from pgshift.lint.finding import Category, Finding, Severity

if TYPE_CHECKING:
    from pgshift.lint.context import FileFacts, LintContext, Stmt

Scope = Literal["statement", "file", "project", "database"]


@dataclass(frozen=True)
class Hit:
    """What a rule found; the engine adds the code, severity, file and position.

    ``at`` is a byte offset into the file (a node's location) to point the caret at; without
    it the finding points at the statement, or at ``line`` (and ``column``) when given.
    ``severity`` lowers the rule's own for this hit, when what decides the harm is a fact
    the rule cannot see (an error it can only suspect is a warning).
    """

    message: str
    at: int | None = None
    help: str | None = None
    line: int | None = None
    column: int = 1
    severity: Severity | None = None


class Rule:
    """One check. Subclasses set the class attributes and override `check` or `check_file`.

    ``blocks``: a finding means the statement blocks reads or writes of an existing table,
    which breaks a ``@zero-downtime: true`` claim.  ``rewrites``: it rewrites or scans a whole
    table, so its duration grows with the table.  ``destructive``: it loses data or schema.
    ``severity`` and ``category`` follow SPEC section 4 (see lint/finding.py); every rule
    declares its category.
    """

    code: ClassVar[str]
    severity: ClassVar[Severity] = "error"
    category: ClassVar[Category]
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


def rule(code: str) -> Rule:
    """The rule registered under ``code``, importing only its own module when needed.

    A rule's module is named after its code, so a database-side finding (drift, a failed
    rollback) costs one small import, not the parser and every rule. KeyError: no such rule.
    """
    if code not in RULES:
        with contextlib.suppress(ModuleNotFoundError):  # a code not named after its module
            importlib.import_module(f"pgshift.lint.rules.{code.replace('-', '_')}")
    if code not in RULES:
        load_rules()
    return RULES[code]


def finding_for(
    code: str,
    file: str,
    line: int,
    column: int,
    message: str,
    *,
    help: str | None = None,
    severity: Severity | None = None,
) -> Finding:
    """A finding of the registered rule ``code``: its severity, category and help unless given.

    For the findings no statement rule produces (drift, a failed round trip, `up`'s own
    warnings), so that their severity and help live with the rule and its page.
    """
    found = rule(code)
    return Finding(
        code,
        severity or found.severity,
        file,
        line,
        column,
        message,
        found.help if help is None else help,
        category=found.category,
    )
