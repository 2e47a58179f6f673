"""Text of the two files `pgshift create` writes, with a header that validates as written."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pgshift.model import Migration


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


def checked_description(title: str, risk_level: str, estimated_duration: str | None) -> str:
    """The file-name description of ``title``, after checking the header values given."""
    from pgshift.durations import parse_duration_ms
    from pgshift.errors import UsageError
    from pgshift.model import RISK_LEVELS
    from pgshift.source.naming import MAX_DESCRIPTION, NAME_MAX, slugify

    try:
        description = slugify(title)
    except ValueError as exc:
        raise UsageError(f"description {title!r}: {exc}") from None
    if len(description) > MAX_DESCRIPTION:
        raise UsageError(
            f"the description is {len(description)} characters in a file name, over the limit"
            f" of {MAX_DESCRIPTION}: a file name has at most {NAME_MAX} bytes, and the"
            " rollback's adds the version and `_rollback.sql`",
            hint="shorten it; the header's `-- Description:` line can say more once written",
        )
    if risk_level not in RISK_LEVELS:
        raise UsageError(f"--risk-level {risk_level!r}: use one of {', '.join(RISK_LEVELS)}")
    if estimated_duration is not None:
        try:
            parse_duration_ms(estimated_duration, default_unit="s")
        except ValueError as exc:
            raise UsageError(f"--estimated-duration: {exc}") from None
    return description


def dependency_names(
    existing: Sequence[Migration], depends_on: Sequence[str], folder: Path
) -> list[str]:
    """Each ``--depends-on`` (a version or a name) as the migration's full name."""
    from pgshift.errors import UsageError

    names = {m.version: m.name for m in existing} | {m.name: m.name for m in existing}
    for dep in depends_on:
        if dep not in names:
            raise UsageError(f"--depends-on {dep}: no such migration in {folder}")
    return [names[d] for d in depends_on]


def free_version(folder: Path, moment: datetime) -> str:
    """The version of a migration created at ``moment``; refused when one already has it."""
    from pgshift.errors import UsageError

    version = f"{moment:%Y%m%d%H%M%S}"
    if any(p.name.startswith(version + "_") for p in folder.glob("*.sql")):
        raise UsageError(
            f"a migration with version {version} already exists in {folder}",
            hint="wait a second and run create again",
        )
    return version


def write_new(texts: dict[Path, str]) -> None:
    """Write every file or none: "x" mode refuses to overwrite, and a refusal undoes the rest."""
    from pgshift.errors import UsageError

    written: list[Path] = []
    try:
        for path, text in texts.items():
            with path.open("x", encoding="utf-8") as fh:
                fh.write(text)
            written.append(path)
    except FileExistsError as exc:
        for path in written:
            path.unlink()
        raise UsageError(f"{exc.filename} already exists; nothing was written") from None
