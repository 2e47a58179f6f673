"""The Settings of a command line, apart from cli/commands.py so a verb's module can read them
without importing the runner's verbs (validate's start-up: issue 10)."""

from __future__ import annotations

import argparse

from pgshift.config import Settings, load_settings


def settings_from(args: argparse.Namespace) -> Settings:
    flags: dict[str, str | None] = {
        "database_url": getattr(args, "database_url", None),
        "migrations_dir": getattr(args, "dir", None),
    }
    return load_settings(flags)
