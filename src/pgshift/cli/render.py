"""Everything pgshift prints: text on a terminal (rich), plain lines otherwise, or JSON."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from pgshift.durations import format_duration_ms
from pgshift.errors import PgshiftError

if TYPE_CHECKING:
    from pgshift import events as ev


class Output:
    """Where a command's words go; commands never call print themselves."""

    def __init__(self, *, quiet: bool = False, json_mode: bool = False, verbose: int = 0) -> None:
        self.quiet = quiet
        self.json_mode = json_mode
        self.verbose = verbose
        self.tty = sys.stdout.isatty()

    def line(self, text: str = "") -> None:
        """Human text; in JSON mode it goes to stderr so stdout stays parseable."""
        if self.quiet:
            return
        stream = sys.stderr if self.json_mode else sys.stdout
        print(text, file=stream, flush=True)

    def ask(self, prompt: str) -> str:
        """Ask on the terminal; in JSON mode the question goes to stderr, keeping stdout clean."""
        stream = sys.stderr if self.json_mode else sys.stdout
        stream.write(prompt)
        stream.flush()
        return sys.stdin.readline()

    def json(self, data: Any) -> None:
        print(json.dumps(data, indent=2, default=str), flush=True)

    def json_line(self, data: Any) -> None:
        """One compact JSON document per line, for streams (`health --watch --json`)."""
        print(json.dumps(data, default=str), flush=True)

    def table(self, headers: list[str], rows: list[list[str]], title: str | None = None) -> None:
        if self.quiet:
            return
        if self.tty and not self.json_mode:
            from rich.console import Console
            from rich.table import Table

            table = Table(title=title)
            for h in headers:
                table.add_column(h)
            for row in rows:
                table.add_row(*row)
            Console().print(table)
            return
        widths = [
            max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
            for i, h in enumerate(headers)
        ]
        if title:
            self.line(title)
        self.line("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
        for row in rows:
            self.line("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())

    def error(self, exc: PgshiftError) -> None:
        if self.json_mode:
            self.json({"error": exc.message, "exit_code": exc.exit_code, "hint": exc.hint})
        self.plain_error(exc.message, exc.hint)

    def plain_error(self, message: str, hint: str | None = None) -> None:
        print(f"error: {message}", file=sys.stderr, flush=True)
        if hint:
            print(f"hint: {hint}", file=sys.stderr, flush=True)


_PAST = {"apply": "applied", "revert": "reverted"}
_DOING = {"apply": "applying", "revert": "reverting"}


class RunRenderer:
    """Turns runner events into progress: a live bar on a terminal, plain lines otherwise.

    It also remembers each step's outcome, which is what `--json` prints.
    """

    def __init__(self, out: Output) -> None:
        self.out = out
        self.steps: list[dict[str, Any]] = []
        self.run_id: str | None = None
        self._progress: Any = None
        self._task: Any = None

    def _say(self, text: str) -> None:
        if self._progress is not None:
            self._progress.console.print(text, highlight=False, markup=False)
        else:
            self.out.line(text)

    def _start_bar(self, total: int) -> None:
        out = self.out
        if not out.tty or out.json_mode or out.quiet or total < 1:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task("starting", total=total)

    def close(self) -> None:
        """Stop the live display; safe to call twice, and after a failure."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def _record(self, version: str, action: str, status: str, ms: int | None) -> None:
        self.steps.append(
            {"version": version, "action": action, "status": status, "duration_ms": ms}
        )

    def __call__(self, event: ev.Event) -> None:
        from pgshift import events as ev  # only once a run emits: a no-op never loads it

        match event:
            case ev.RunnerLockWaiting(holder=holder):
                self._say(f"waiting for the migration lock held by {holder}")
            case ev.RunStarted(run_id=run_id, versions=versions):
                self.run_id = run_id
                self._say(f"run {run_id}: {len(versions)} step(s)")
                self._start_bar(len(versions))
            case ev.StepStarted(name=name, resumed_from=resumed, statements=total, action=act):
                suffix = f" (resuming after statement {resumed} of {total})" if resumed else ""
                if self._progress is not None:
                    self._progress.update(self._task, description=f"{_DOING[act]} {name}")
                if self.out.verbose or self._progress is None:
                    self._say(f"  {_DOING[act]} {name}{suffix}")
                elif suffix:
                    self._say(f"  {name}{suffix}")
            case ev.StatementDone(version=version, index=index, total=total):
                if self.out.verbose:
                    self._say(f"    {version}: {index}/{total} statement(s) done")
            case ev.LockRetry(line=line, attempt=attempt, sleep_ms=sleep_ms, detail=detail):
                self._say(
                    f"    lock busy at line {line} ({detail}); retry {attempt} in {sleep_ms} ms"
                )
            case ev.InvalidIndexRebuilt(index=index):
                self._say(
                    f"    found INVALID index {index} from an earlier failed build: rebuilding"
                )
            case ev.StepApplied(version=version, name=name, duration_ms=ms, action=act):
                self._record(version, act, _PAST[act], ms)
                self._say(f"  {_PAST[act]:<9}{name} ({format_duration_ms(ms)})")
                if self._progress is not None:
                    self._progress.advance(self._task)
            case ev.StepSkipped(version=version, reason=reason, action=act):
                self._record(version, act, "skipped", 0)
                self._say(f"  skipped  {version}: {reason}")
                if self._progress is not None:
                    self._progress.advance(self._task)
            case ev.StepFailed(version=version, name=name, action=act):
                self._record(version, act, "failed", None)
                self._say(f"  FAILED   {name}")
            case ev.HealthSample(message=message, cancelled=cancelled):
                notable = cancelled or event.blocked_behind or event.long_transactions
                if notable or self.out.verbose:
                    self._say(f"    health: {message}")
            case ev.RunFinished(applied=done, duration_ms=ms):
                self.close()
                self._say(f"done: {done} step(s) in {format_duration_ms(ms)}")
