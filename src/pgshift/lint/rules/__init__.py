"""One module per lint rule, named after its code; importing them registers them."""

from __future__ import annotations

import importlib
import pkgutil

_loaded = False


def load_all() -> None:
    """Import every module of this package once (each one registers its rule)."""
    global _loaded  # noqa: PLW0603 - a once-only import guard
    if _loaded:
        return
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
    _loaded = True
