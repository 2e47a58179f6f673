"""Everything pgshift prints: text on a terminal (rich), plain lines otherwise, or JSON."""

from __future__ import annotations

import json
import sys
from typing import Any

from pgshift import events as ev
from pgshift.durations import format_duration_ms
from pgshift.errors import PgshiftError


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


class RunRenderer:
    """Turns runner events into progress lines, and remembers the steps for JSON output."""

    def __init__(self, out: Output) -> None:
        self.out = out
        self.steps: list[dict[str, Any]] = []
        self.run_id: str | None = None

    def __call__(self, event: ev.Event) -> None:
        out = self.out
        match event:
            case ev.RunnerLockWaiting(holder=holder):
                out.line(f"waiting for the migration lock held by {holder}")
            case ev.RunStarted(run_id=run_id, versions=versions):
                self.run_id = run_id
                out.line(f"run {run_id}: applying {len(versions)} migration(s)")
            case ev.StepStarted(name=name, resumed_from=resumed, statements=total):
                suffix = f" (resuming after statement {resumed} of {total})" if resumed else ""
                out.line(f"  applying {name}{suffix}")
            case ev.LockRetry(
                version=version, line=line, attempt=attempt, sleep_ms=sleep_ms, detail=detail
            ):
                out.line(
                    f"    lock busy at line {line} ({detail}); retry {attempt} in {sleep_ms} ms"
                )
            case ev.InvalidIndexRebuilt(index=index):
                out.line(
                    f"    found INVALID index {index} from an earlier failed build: rebuilding"
                )
            case ev.StepApplied(version=version, name=name, duration_ms=ms):
                self.steps.append(
                    {"version": version, "action": "apply", "status": "applied", "duration_ms": ms}
                )
                out.line(f"  applied  {name} ({format_duration_ms(ms)})")
            case ev.StepSkipped(version=version, reason=reason):
                self.steps.append(
                    {"version": version, "action": "apply", "status": "skipped", "duration_ms": 0}
                )
                out.line(f"  skipped  {version}: {reason}")
            case ev.StepFailed(version=version, name=name):
                self.steps.append(
                    {"version": version, "action": "apply", "status": "failed", "duration_ms": None}
                )
                out.line(f"  FAILED   {name}")
            case ev.RunFinished(applied=applied, duration_ms=ms):
                out.line(f"done: {applied} migration(s) applied in {format_duration_ms(ms)}")
            case ev.StatementDone():
                pass
