""" "Did you mean": the closest known word to a mistyped command, option or setting name."""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence


def closest(word: str, known: Iterable[str]) -> str | None:
    """The known word most like ``word`` (difflib's ratio, 0.6 or more), or None."""
    import difflib

    found = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return found[0] if found else None


def option_strings(parser: argparse.ArgumentParser, path: Sequence[str]) -> list[str]:
    """The long and short options of the (sub)command ``path`` names (["rollback", "safe"]),
    or of ``parser`` itself when the path leads nowhere."""
    current = parser
    for word in path:
        sub = next((a for a in current._actions if isinstance(a, argparse._SubParsersAction)), None)
        if sub is None or word not in sub.choices:
            break
        current = sub.choices[word]
    return [o for a in current._actions for o in a.option_strings]
