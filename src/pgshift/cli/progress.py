"""What a long proof is doing while it works: a spinner with the elapsed time on a terminal,
plain log lines otherwise.

Why: `validate --roundtrip` and `--trace`, `rollback dry-run --simulate` and `baseline` make a
scratch database and run migrations on it, silently for up to half a minute; an operator cannot
tell a slow proof from a hung one, and a CI log shows nothing until the end. The operations emit
`Working` events (pgshift.events); this turns them into something to look at, on stderr, so
stdout keeps the command's answer (JSON, SARIF) clean. `-q` silences it.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pgshift.cli.render import Output, write
from pgshift.durations import format_duration_ms

if TYPE_CHECKING:
    from pgshift import events as ev


def describe(event: ev.Working) -> str:
    """``doing (done of total)``: the text of one step, on the spinner or a log line."""
    count = f" ({event.done} of {event.total})" if event.total is not None else ""
    return f"{event.doing}{count}"


class WorkRenderer:
    """Renders Working / WorkDone events; any other event is ignored, so it can be handed to an
    operation as its whole event sink. Call ``close`` when the command ends (even on an error)."""

    def __init__(self, out: Output) -> None:
        self.out = out
        self.live = sys.stderr.isatty() and not out.quiet
        self._started: dict[str, float] = {}
        self._progress: Any = None
        self._task: Any = None

    def __call__(self, event: ev.Event) -> None:
        from pgshift import events as ev

        if isinstance(event, ev.Working):
            self._working(event)
        elif isinstance(event, ev.WorkDone):
            self._done(event)

    def _working(self, event: ev.Working) -> None:
        started = self._started.setdefault(event.task, time.monotonic())
        if self.live:
            self._spin(f"{event.task}: {describe(event)}")
        elif not self.out.quiet:
            elapsed = format_duration_ms(int((time.monotonic() - started) * 1000))
            write(sys.stderr, f"{event.task} [{elapsed}]: {describe(event)}\n")

    def _done(self, event: ev.WorkDone) -> None:
        self._started.pop(event.task, None)
        self.close()
        if not self.out.quiet:
            took = format_duration_ms(event.duration_ms)
            write(sys.stderr, f"{event.task}: finished in {took}\n")

    def _spin(self, text: str) -> None:
        if self._progress is None:
            from rich.console import Console
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task(text, total=None)
        else:
            self._progress.update(self._task, description=text)

    def close(self) -> None:
        """Stop the spinner; safe to call twice."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


@contextlib.contextmanager
def showing_work(out: Output) -> Iterator[WorkRenderer]:
    """A WorkRenderer for the block, its spinner stopped however the block ends."""
    renderer = WorkRenderer(out)
    try:
        yield renderer
    finally:
        renderer.close()


__all__ = ["WorkRenderer", "describe", "showing_work"]
