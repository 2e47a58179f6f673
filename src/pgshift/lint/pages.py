"""The rule pages shipped in the package, for `pgshift explain`.

Why a link and not a copy: ``pgshift/rule_docs`` is a symbolic link to the repository's
``docs/rules``, so the pages users read on the project's site and the pages the wheel ships
are the same files (setuptools copies the link's target into the wheel as package data).
"""

from __future__ import annotations

import difflib
from importlib import resources

from pgshift.errors import UsageError

#: How many close names an unknown rule's error suggests.
_SUGGESTIONS = 3


def page(code: str) -> str:
    """The page of rule ``code`` as Markdown; UsageError (exit 2) for a code no rule has.

    Only registered codes are looked up, so the argument never names a path of its own.
    """
    from pgshift.lint.registry import load_rules

    known = load_rules()
    if code not in known:
        close = difflib.get_close_matches(code, sorted(known), n=_SUGGESTIONS, cutoff=0.5)
        hint = (
            f"did you mean {', '.join(close)}?"
            if close
            else "the rules are listed at " + _list_hint()
        )
        raise UsageError(f"no lint rule is called {code!r}", hint=hint)
    return (resources.files("pgshift") / "rule_docs" / f"{code}.md").read_text(encoding="utf-8")


def _list_hint() -> str:
    from pgshift.config import DEFAULT_DOCS_URL

    return DEFAULT_DOCS_URL
