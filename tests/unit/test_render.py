"""What `up` and the rollbacks print for each runner event, without a terminal or a database."""

from __future__ import annotations

from typing import Any, get_args

from pgshift import events as ev
from pgshift.cli.render import Output, RunRenderer, _handlers

V1 = "20250101000000"


class Lines(Output):
    def __init__(self, verbose: int = 0) -> None:
        super().__init__(verbose=verbose)
        self.tty = False
        self.lines: list[str] = []

    def line(self, text: str = "") -> None:
        self.lines.append(text)


class FakeBar:
    """Stands in for rich's Progress: records what the renderer asks of it."""

    def __init__(self, lines: list[str]) -> None:
        self.calls: list[str] = []
        self.console = self
        self._lines = lines

    def print(self, text: str, **_: Any) -> None:
        self._lines.append(f"bar| {text}")

    def update(self, _task: Any, *, description: str, completed: int | None = None) -> None:
        done = f" [{completed}]" if completed is not None else ""
        self.calls.append(f"update {description}{done}")

    def add_task(self, description: str, *, total: int | None, completed: int) -> str:
        self.calls.append(f"add {description} {completed}/{total}")
        return description

    def remove_task(self, task: str) -> None:
        self.calls.append(f"remove {task}")

    def advance(self, _task: Any) -> None:
        self.calls.append("advance")

    def stop(self) -> None:
        self.calls.append("stop")


def sample(*, cancelled: bool = False, blocked: int = 0) -> ev.HealthSample:
    return ev.HealthSample("r", blocked, 0, blocked, 0, None, cancelled, "all quiet")


EVENTS: list[ev.Event] = [
    ev.RunnerLockWaiting("pid 7"),
    ev.RunStarted("r1", (V1, "20250102000000")),
    ev.StepStarted(V1, f"{V1}_a", 4, 0),
    ev.StatementDone(V1, 1, 4),
    ev.LockRetry(V1, 3, 2, 100, "t is busy"),
    ev.InvalidIndexRebuilt(V1, "i"),
    sample(),
    sample(blocked=2),
    ev.StepApplied(V1, f"{V1}_a", 1500),
    ev.StepStarted("20250102000000", "20250102000000_b", 4, 2, action="revert"),
    ev.StepSkipped("20250102000000", "already reverted", action="revert"),
    ev.StepFailed("20250103000000", "20250103000000_c", "boom"),
    ev.RunFinished("r1", 1, 2500),
]


def test_plain_lines_for_each_event() -> None:
    out = Lines()
    renderer = RunRenderer(out)
    for event in EVENTS:
        renderer(event)
    assert out.lines == [
        "waiting for the migration lock held by pid 7",
        "run r1: 2 step(s)",
        f"  applying {V1}_a",
        "    lock busy at line 3 (t is busy); retry 2 in 100 ms",
        "    found INVALID index i from an earlier failed build: rebuilding",
        "    health: all quiet",
        f"  applied  {V1}_a (1.5s)",
        "  reverting 20250102000000_b (resuming after statement 2 of 4)",
        "  skipped  20250102000000: already reverted",
        "  FAILED   20250103000000_c",
        "done: 1 step(s) in 2.5s",
    ]
    assert renderer.run_id == "r1"
    assert renderer.steps == [
        {"version": V1, "action": "apply", "status": "applied", "duration_ms": 1500},
        {"version": "20250102000000", "action": "revert", "status": "skipped", "duration_ms": 0},
        {"version": "20250103000000", "action": "apply", "status": "failed", "duration_ms": None},
    ]


def test_verbose_adds_statements_and_every_health_sample() -> None:
    out = Lines(verbose=1)
    renderer = RunRenderer(out)
    renderer(ev.StatementDone(V1, 1, 4))
    renderer(sample())
    assert out.lines == [f"    {V1}: 1/4 statement(s) done", "    health: all quiet"]


def test_with_a_live_bar_steps_update_it_and_only_resumes_are_printed() -> None:
    out = Lines()
    renderer = RunRenderer(out)
    bar = FakeBar(out.lines)
    renderer._progress = bar
    renderer(ev.StepStarted(V1, f"{V1}_a", 4, 0))
    renderer(ev.StepStarted(V1, f"{V1}_a", 4, 1))
    renderer(ev.StepApplied(V1, f"{V1}_a", 10))
    renderer(ev.StepSkipped(V1, "done", action="revert"))
    renderer(sample(cancelled=True))
    renderer(ev.RunFinished("r1", 1, 10))
    assert bar.calls == [
        f"update applying {V1}_a",
        f"update applying {V1}_a",
        "advance",
        "advance",
        "stop",
    ]
    assert out.lines == [
        f"bar|   {V1}_a (resuming after statement 1 of 4)",
        f"bar|   applied  {V1}_a (10ms)",
        f"bar|   skipped  {V1}: done",
        "bar|     health: all quiet",
        "done: 1 step(s) in 10ms",
    ]


def test_every_event_type_has_a_handler() -> None:
    assert set(_handlers()) == set(get_args(ev.Event))


BACKFILL: list[ev.Event] = [
    ev.BackfillStarted(V1, "items", ("id",), 20_000, 5000, 1000),
    ev.BackfillProgress(V1, 10_000, 20_000, 10_000, 2500.0, 1000, 10),
    ev.BackfillPaused(V1, "lock-waiters", 20, "2 session(s) waited on the last batch's rows"),
    ev.BackfillFinished(V1, 20_000, 20_000, 20, 6000),
]


def test_a_backfill_on_a_terminal_is_a_bar_of_rows_with_rate_and_eta() -> None:
    out = Lines()
    renderer = RunRenderer(out)
    bar = FakeBar(out.lines)
    renderer._progress = bar
    for event in BACKFILL:
        renderer(event)
    assert bar.calls == [
        f"add backfill {V1} 5000/20000",
        f"update backfill {V1}: 2,500 rows/s, ETA 4.0s [10000]",
        f"remove backfill {V1}",
    ]
    assert out.lines[-1] == "bar|     backfill done: 20,000 rows changed in 20 batches (6.0s)"


def test_a_backfill_without_a_terminal_is_log_lines() -> None:
    out = Lines()
    renderer = RunRenderer(out)
    for event in BACKFILL:
        renderer(event)
    assert out.lines == [
        "    backfill along items (id): ~20,000 rows, batches of 1,000, resuming after 5,000 keys",
        "    backfilling 50% (10,000 of ~20,000 rows), 2,500 rows/s, ETA 4.0s",
        "    backfill paused 20 ms: 2 session(s) waited on the last batch's rows",
        "    backfill done: 20,000 rows changed in 20 batches (6.0s)",
    ]
