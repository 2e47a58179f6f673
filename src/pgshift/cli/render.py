"""Everything pgshift prints: text on a terminal (rich), plain lines otherwise, or JSON."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

from pgshift.durations import format_duration_ms
from pgshift.errors import PgshiftError

if TYPE_CHECKING:
    from pgshift import events as ev


def write(stream: Any, text: str) -> None:
    """Write and flush ``text``; a reader that went away (`| head`) silences the stream.

    A closed pipe is the reader's choice, not a failure of the command: the run goes on to
    its end and its own exit code, and the words meant for that reader are dropped.
    """
    try:
        stream.write(text)
        stream.flush()
    except BrokenPipeError:
        stream_closed(stream)


def stream_closed(stream: Any) -> None:
    """Point ``stream``'s descriptor at /dev/null, so later writes and the flush at exit succeed.

    Without it, every later write raises again and the interpreter's final flush prints
    "Exception ignored ... BrokenPipeError" on stderr. A stream with no descriptor (a test's
    capture) is swapped in ``sys`` instead.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        fd = stream.fileno()
    except (AttributeError, ValueError, OSError):
        fd = None
    if fd is not None:
        os.dup2(devnull, fd)
        os.close(devnull)
        return
    replacement = os.fdopen(devnull, "w")
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is stream:
            setattr(sys, name, replacement)


#: Table columns whose values people copy into the next command (`rollback to-version V`,
#: `rollback restore ID`): never wrapped nor cut, at any terminal width.
KEY_COLUMNS = frozenset({"version", "id", "file", "setting", "versions applied"})


#: The narrowest a column of long text is folded to in a rich table (see Output.table).
FOLDED_MIN = 20
#: What a rich table's default box adds per column: a rule and a space of padding each side.
_BORDERS_PER_COLUMN = 3


def _natural_widths(headers: list[str], rows: list[list[str]]) -> list[int]:
    """Each column's width when nothing is folded: its longest cell or its header."""
    return [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]


def console() -> Any:
    """A rich Console on stdout that treats a closed pipe like Output does, not as an exit."""
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True
            stream_closed(sys.stdout)

    return _Console()


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
        write(stream, text + "\n")

    def info(self, text: str) -> None:
        """A progress or status line on stderr (stdout keeps the command's answer); -q hides it."""
        if not self.quiet:
            write(sys.stderr, text + "\n")

    def ask(self, prompt: str) -> str:
        """Ask on the terminal; in JSON mode the question goes to stderr, keeping stdout clean."""
        stream = sys.stderr if self.json_mode else sys.stdout
        write(stream, prompt)
        return sys.stdin.readline()

    def confirm(
        self,
        question: str,
        *,
        yes: bool,
        refusal: str,
        hint: str = "pass --yes to go ahead without asking",
    ) -> bool:
        """True with --yes; else the answer to ``question`` on a terminal. Without a terminal
        nobody can answer, so it refuses (exit 2) rather than wait or guess: ``refusal`` says
        what was not done."""
        if yes:
            return True
        if not sys.stdin.isatty():
            from pgshift.errors import UsageError

            raise UsageError(
                f"{refusal} without confirmation: there is no terminal to ask on", hint=hint
            )
        return self.ask(f"{question} [y/N] ").strip().lower() in ("y", "yes")

    def json(self, data: Any) -> None:
        write(sys.stdout, json.dumps(data, indent=2, default=str) + "\n")

    def json_line(self, data: Any) -> None:
        """One compact JSON document per line, for streams (`health --watch --json`)."""
        write(sys.stdout, json.dumps(data, default=str) + "\n")

    def table(
        self,
        headers: list[str],
        rows: list[list[str]],
        title: str | None = None,
        styles: Mapping[str, Callable[[str], str | None]] | None = None,
    ) -> None:
        """A table: rich on a terminal wide enough for it, one block per row on a narrow one,
        aligned plain lines off a terminal.

        On a terminal, a column is folded only when it holds long text (FOLDED_MIN and more),
        and never below that; KEY_COLUMNS and short values (a date, a size) keep their width.
        When even that does not fit, each row is printed as ``header  value`` lines instead:
        at 60 or 80 columns a seven-column table would otherwise squeeze five columns to
        nothing and wrap a date over eight lines. The line is never cropped, so a version or
        a backup id is always there to copy.

        ``styles`` colours a column's cells on a terminal ({header: value -> style name of
        cli/colour.py}); never off a terminal or with NO_COLOR (rich and colour.py both check).
        """
        if self.quiet:
            return
        if self.tty and not self.json_mode:
            shown = console()
            widths = _natural_widths(headers, rows)
            least = [
                w if h in KEY_COLUMNS else min(w, FOLDED_MIN)
                for h, w in zip(headers, widths, strict=True)
            ]
            if sum(least) + _BORDERS_PER_COLUMN * len(headers) + 1 > shown.width:
                self._records(headers, rows, title, styles)
                return
            from rich.table import Table
            from rich.text import Text

            table = Table(title=title)
            for h, width in zip(headers, widths, strict=True):
                if h in KEY_COLUMNS or width <= FOLDED_MIN:
                    table.add_column(h, no_wrap=True, min_width=width)
                else:
                    table.add_column(h, overflow="fold", min_width=FOLDED_MIN)
            for row in rows:
                # Text, not str: a cell is shown as it is, never read as rich markup.
                cells = zip(headers, row, strict=True)
                table.add_row(*(_cell(Text, h, c, styles) for h, c in cells))
            shown.print(table, crop=False)
            return
        widths = _natural_widths(headers, rows)
        if title:
            self.line(title)
        self.line("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
        for row in rows:
            self.line("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())

    def _records(
        self,
        headers: list[str],
        rows: list[list[str]],
        title: str | None,
        styles: Mapping[str, Callable[[str], str | None]] | None = None,
    ) -> None:
        """Each row as a block of ``header  value`` lines: what a narrow terminal can show."""
        from pgshift.cli.colour import paint

        label = max(len(h) for h in headers)
        if title:
            self.line(title)
        for row in rows:
            self.line()
            for h, value in zip(headers, row, strict=True):
                style = styles[h](value) if styles and h in styles else None
                shown = paint(value, style, sys.stdout) if style else value
                self.line(f"{h.ljust(label)}  {shown}".rstrip())

    def error(self, exc: PgshiftError) -> None:
        if self.json_mode:
            self.json({"error": exc.message, "exit_code": exc.exit_code, "hint": exc.hint})
        self.plain_error(exc.message, exc.hint)

    def plain_error(self, message: str, hint: str | None = None) -> None:
        write(sys.stderr, f"error: {message}\n" + (f"hint: {hint}\n" if hint else ""))


#: How a table colours a column: {header: value -> a style name of cli/colour.py, or None}.
Styles = Mapping[str, Callable[[str], str | None]]


def _cell(text_type: Any, header: str, value: str, styles: Styles | None) -> Any:
    """A rich Text of ``value``, in the style ``styles`` gives its column's values."""
    style = styles[header](value) if styles and header in styles else None
    return text_type(value, style=style or "")


def size_text(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


class BackupRenderer:
    """Backup and restore progress: a live size line on a terminal, two plain lines otherwise."""

    def __init__(self, out: Output) -> None:
        self.out = out
        self.started = False
        self.live = out.tty and not out.json_mode and not out.quiet

    def __call__(self, event: ev.BackupProgress) -> None:
        verb = {"dump": "dumping", "verify": "verifying", "restore": "restoring"}[event.phase]
        if self.live:
            total = f" (database {size_text(event.total_bytes)})" if event.total_bytes else ""
            if event.phase == "restore" and event.total_bytes:
                total = f" (archive {size_text(event.total_bytes)})"
            write(sys.stdout, f"\r  {verb}: {size_text(event.done_bytes)}{total}\033[K")
        elif not self.started or event.phase == "verify":
            self.out.line(f"  {verb} ...")
        self.started = True

    def done(self) -> None:
        if self.live and self.started:
            write(sys.stdout, "\r\033[K")
        self.started = False


_PAST = {"apply": "applied", "revert": "reverted", "contract": "contracted"}
_DOING = {"apply": "applying", "revert": "reverting", "contract": "contracting"}


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
        self.backup = BackupRenderer(out)
        self.backfill_said = 0.0  # when the last backfill progress line was printed
        self.backfill_task: Any = None  # the live bar's backfill row, while one runs
        self.waiters_said = float("-inf")  # when a pause for lock waiters was last printed

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
        """One small method per event type, looked up by the event's class.

        An event type this renderer does not know (a newer one) is ignored, as the match it
        replaced did, rather than failing a run over its progress display.
        """
        handler = _handlers().get(type(event))
        if handler is not None:
            handler(self, event)

    def _lock_waiting(self, event: ev.RunnerLockWaiting) -> None:
        self._say(f"waiting for the migration lock held by {event.holder}")

    def _earlier_run_waiting(self, event: ev.EarlierRunWaiting) -> None:
        self._say(
            "holding the migration lock; waiting for a session of an earlier run that is still"
            f" executing: {event.session}"
        )

    def _plan_overtaken(self, event: ev.PlanOvertaken) -> None:
        self._say(event.detail)

    def _run_started(self, event: ev.RunStarted) -> None:
        self.run_id = event.run_id
        self._say(f"run {event.run_id}: {len(event.versions)} step(s)")
        self._start_bar(len(event.versions))

    def _step_started(self, event: ev.StepStarted) -> None:
        resumed, total, doing = event.resumed_from, event.statements, _DOING[event.action]
        suffix = f" (resuming after statement {resumed} of {total})" if resumed else ""
        if self._progress is not None:
            self._progress.update(self._task, description=f"{doing} {event.name}")
        if self.out.verbose or self._progress is None:
            self._say(f"  {doing} {event.name}{suffix}")
        elif suffix:  # the bar shows the step; a resume is worth a line of its own
            self._say(f"  {event.name}{suffix}")

    def _statement_done(self, event: ev.StatementDone) -> None:
        if self.out.verbose:
            self._say(f"    {event.version}: {event.index}/{event.total} statement(s) done")

    def _lock_retry(self, event: ev.LockRetry) -> None:
        self._say(
            f"    lock busy at line {event.line} ({event.detail});"
            f" retry {event.attempt} in {event.sleep_ms} ms"
        )

    def _invalid_index_rebuilt(self, event: ev.InvalidIndexRebuilt) -> None:
        self._say(f"    found INVALID index {event.index} from an earlier failed build: rebuilding")

    def _advance(self) -> None:
        if self._progress is not None:
            self._progress.advance(self._task)

    def _step_applied(self, event: ev.StepApplied) -> None:
        past = _PAST[event.action]
        self._record(event.version, event.action, past, event.duration_ms)
        self._say(f"  {past:<9}{event.name} ({format_duration_ms(event.duration_ms)})")
        self._advance()

    def _step_skipped(self, event: ev.StepSkipped) -> None:
        self._record(event.version, event.action, "skipped", 0)
        self._say(f"  skipped  {event.version}: {event.reason}")
        self._advance()

    def _step_failed(self, event: ev.StepFailed) -> None:
        self._record(event.version, event.action, "failed", None)
        self._say(f"  FAILED   {event.name}")

    def _health_sample(self, event: ev.HealthSample) -> None:
        notable = event.cancelled or event.blocked_behind or event.long_transactions
        if notable or self.out.verbose:
            self._say(f"    health: {event.message}")

    def _interrupted(self, event: ev.Interrupted) -> None:
        """The stop itself is the error main prints (with the re-run hint); the bar ends here."""
        self.close()

    def _run_finished(self, event: ev.RunFinished) -> None:
        self.close()
        self._say(f"done: {event.applied} step(s) in {format_duration_ms(event.duration_ms)}")


def _backup_progress(renderer: RunRenderer, event: ev.BackupProgress) -> None:
    renderer.backup(event)


def _backup_taken(renderer: RunRenderer, event: ev.BackupTaken) -> None:
    renderer.backup.done()
    renderer._say(
        f"backup {event.backup_id} taken ({event.reason}): {size_text(event.size_bytes)},"
        f" sha256 {event.sha256[:16]}..., {event.versions} migration(s) applied"
    )


def _backfill_started(renderer: RunRenderer, event: ev.BackfillStarted) -> None:
    estimate = f"~{event.estimate:,} rows" if event.estimate is not None else "rows unknown"
    resumed = f", resuming after {event.keys_done:,} keys" if event.keys_done else ""
    renderer._say(
        f"    backfill along {event.table} ({', '.join(event.key)}): {estimate},"
        f" batches of {event.batch_size:,}{resumed}"
    )
    bar = renderer._progress
    if bar is not None:  # a row of its own on the live bar: rows done of the estimate
        renderer.backfill_task = bar.add_task(
            f"backfill {event.version}", total=event.estimate, completed=event.keys_done
        )


def _backfill_progress(renderer: RunRenderer, event: ev.BackfillProgress) -> None:
    """On a terminal, the live bar's backfill row: rows done of the estimate, rows/s, ETA.
    Otherwise a log line at most every 10 s (every event with --verbose): the progress of a
    long backfill without one line per batch."""
    import time

    bar, task = renderer._progress, renderer.backfill_task
    if bar is not None and task is not None:
        eta = f", ETA {format_duration_ms(int(event.eta_s * 1000))}" if event.eta_s else ""
        bar.update(
            task,
            completed=event.keys_done,
            description=f"backfill {event.version}: {event.rows_per_s:,.0f} rows/s{eta}",
        )
        return
    now = time.monotonic()
    if not renderer.out.verbose and now - renderer.backfill_said < 10:
        return
    renderer.backfill_said = now
    percent = f"{event.percent:.0f}% " if event.percent is not None else ""
    of = f" of ~{event.estimate:,}" if event.estimate is not None else ""
    eta = f", ETA {format_duration_ms(int(event.eta_s * 1000))}" if event.eta_s else ""
    renderer._say(
        f"    backfilling {percent}({event.keys_done:,}{of} rows),"
        f" {event.rows_per_s:,.0f} rows/s{eta}"
    )


def _backfill_paused(renderer: RunRenderer, event: ev.BackfillPaused) -> None:
    """Every pause for a lagging replica; pauses for sessions waiting on the batches (short,
    and frequent under load) at most every 10 s unless --verbose."""
    import time

    if event.reason == "lock-waiters" and not renderer.out.verbose:
        now = time.monotonic()
        if now - renderer.waiters_said < 10:
            return
        renderer.waiters_said = now
    renderer._say(f"    backfill paused {event.pause_ms} ms: {event.detail}")


def _backfill_finished(renderer: RunRenderer, event: ev.BackfillFinished) -> None:
    if renderer._progress is not None and renderer.backfill_task is not None:
        renderer._progress.remove_task(renderer.backfill_task)
    renderer.backfill_task = None
    renderer._say(
        f"    backfill done: {event.rows_done:,} rows changed in {event.batches:,} batches"
        f" ({format_duration_ms(event.duration_ms)})"
    )


def _working(renderer: RunRenderer, event: ev.Working) -> None:
    """A long task inside a run (none emits one yet): a line, like the run's other steps."""
    count = f" ({event.done} of {event.total})" if event.total is not None else ""
    renderer._say(f"    {event.task}: {event.doing}{count}")


def _work_done(renderer: RunRenderer, event: ev.WorkDone) -> None:
    """The task's end is the next step's start: nothing to say."""


@cache
def _handlers() -> dict[type, Callable[[RunRenderer, Any], None]]:
    """Event class -> RunRenderer's method for it; every event type in events.Event has one.

    Built on the first event, so that a command that never runs anything (`status`, a no-op
    `up`) never loads the events module.
    """
    from pgshift import events as ev

    return {
        ev.RunnerLockWaiting: RunRenderer._lock_waiting,
        ev.EarlierRunWaiting: RunRenderer._earlier_run_waiting,
        ev.PlanOvertaken: RunRenderer._plan_overtaken,
        ev.RunStarted: RunRenderer._run_started,
        ev.StepStarted: RunRenderer._step_started,
        ev.StatementDone: RunRenderer._statement_done,
        ev.LockRetry: RunRenderer._lock_retry,
        ev.InvalidIndexRebuilt: RunRenderer._invalid_index_rebuilt,
        ev.StepApplied: RunRenderer._step_applied,
        ev.StepSkipped: RunRenderer._step_skipped,
        ev.StepFailed: RunRenderer._step_failed,
        ev.HealthSample: RunRenderer._health_sample,
        ev.RunFinished: RunRenderer._run_finished,
        ev.Interrupted: RunRenderer._interrupted,
        ev.BackupProgress: _backup_progress,
        ev.BackupTaken: _backup_taken,
        ev.BackfillStarted: _backfill_started,
        ev.BackfillProgress: _backfill_progress,
        ev.BackfillPaused: _backfill_paused,
        ev.BackfillFinished: _backfill_finished,
        ev.Working: _working,
        ev.WorkDone: _work_done,
    }
