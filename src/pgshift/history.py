"""What the database remembers about migrations: applied rows, in-flight progress and failures."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class AppliedMigration:
    """One row of the applied-migrations table."""

    version: str
    description: str
    checksum: str
    rollback_checksum: str | None
    applied_at: datetime
    duration_ms: int
    applied_by: str
    host: str | None
    run_id: str
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Progress:
    """How far a migration that runs partly outside a transaction got before it stopped.

    ``prefix_checksum`` covers the text of the statements already done, so a resumed run can
    tell whether the author edited what already ran (drift) or only what is still to come.
    """

    version: str
    checksum: str
    prefix_checksum: str
    statements_done: int
    run_id: str
    updated_at: datetime
    action: str = "apply"  # "revert" while its rollback file is part-way through


@dataclass(frozen=True)
class History:
    """Everything `plan` needs from the database, read in one go."""

    applied: tuple[AppliedMigration, ...] = ()
    in_progress: tuple[Progress, ...] = ()
    failed: frozenset[str] = frozenset()  # versions whose latest attempt failed, not applied

    def applied_versions(self) -> dict[str, AppliedMigration]:
        return {a.version: a for a in self.applied}

    def progress_of(self, version: str, action: str | None = None) -> Progress | None:
        for p in self.in_progress:
            if p.version == version and (action is None or p.action == action):
                return p
        return None
