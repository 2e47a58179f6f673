"""What the pure core may be handed to share its work with a second core, as protocols only.

The loader and the lint engine start no process themselves (DESIGN.md: a pure core); a caller
that may fork hands them a ``Helper`` (pgshift/beside.py), and a caller that may not hands
them nothing, and they do all the work themselves. Either way the result is the same.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Pending(Protocol[T_co]):
    """Work under way elsewhere."""

    def result(self) -> T_co | None:
        """Wait for it: its value, or None when it failed (the caller then does it itself)."""

    def cancel(self) -> None:
        """Stop it; its value is not wanted any more."""


class Helper(Protocol):
    """Starts ``work`` elsewhere, or returns None when it cannot (then the caller does it)."""

    def __call__(self, work: Callable[[], T]) -> Pending[T] | None: ...
