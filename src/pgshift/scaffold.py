"""Text of the two files `pgshift create` writes, with a header that validates as written."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime


def migration_text(
    version: str,
    description: str,
    title: str,
    created: datetime,
    *,
    zero_downtime: bool,
    estimated_duration: str | None,
    risk_level: str,
    dependencies: Sequence[str],
) -> str:
    lines = [
        f"-- Migration: {version}_{description}.sql",
        f"-- Description: {title}",
        f"-- Created: {created:%Y-%m-%d}",
        f"-- Version: {version}",
        f"-- @zero-downtime: {'true' if zero_downtime else 'false'}",
    ]
    if estimated_duration:
        lines.append(f"-- @estimated-duration: {estimated_duration}")
    lines.append(f"-- @risk-level: {risk_level}")
    if dependencies:
        lines.append(f"-- @dependencies: {', '.join(dependencies)}")
    lines += [
        "",
        "-- Write the change here. Each migration runs in its own transaction; statements such",
        "-- as CREATE INDEX CONCURRENTLY are run outside it automatically.",
        "",
    ]
    return "\n".join(lines)


def rollback_text(version: str, description: str, title: str, created: datetime) -> str:
    return "\n".join(
        [
            f"-- Rollback: {version}_{description}_rollback.sql",
            f"-- Description: Rollback for {title[:1].lower() + title[1:]}",
            f"-- Created: {created:%Y-%m-%d}",
            f"-- Version: {version}",
            "",
            "-- Undo the change here, newest object first.",
            "",
        ]
    )
