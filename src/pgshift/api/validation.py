"""A lint rule's page for the library: explain.

validate and its ValidateReport are defined in ops/validation.py and re-exported as they are.
"""

from __future__ import annotations

__all__ = ["explain"]


def explain(code: str) -> str:
    """The page of lint rule ``code`` (Markdown, the text of docs/rules/CODE.md).

    An unknown code raises UsageError (exit 2) whose hint names the closest rules.
    """
    from pgshift.lint.pages import page

    return page(code)
