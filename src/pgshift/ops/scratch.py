"""Where a command's scratch databases go: the one choice of server every proof on a copy makes.

``scratch_url``'s server when given; else the target's own server when its role may create a
database (the proof then runs on the target's major); else this project's embedded server,
started only if it comes to that. Roundtrip, trace, baseline and the rollback simulation all
ask here, so they choose alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pgshift.config import Settings
    from pgshift.db.scratch import ScratchServer


def scratch_server(
    settings: Settings, target_url: str | None, scratch_url: str | None = None
) -> ScratchServer:
    """The ScratchServer for a project whose target is ``target_url`` (None: none configured)."""
    from pgshift.db.scratch import ScratchServer
    from pgshift.embedded import scratch_starter

    starter = scratch_starter(settings.project.root)
    return ScratchServer(target_url=target_url, scratch_url=scratch_url, embedded=starter)
