"""A stop request (SIGINT, SIGTERM) on the in-memory runner: where it stops and what it says.

The real signals and a real server are in tests/integration/test_signals.py; here the request
arrives "during" a statement through the scripted executor's hook, so each boundary is exact.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from pgshift.config import load_settings
from pgshift.errors import ConfigError, HalfApplied, Interrupted
from pgshift.ops.apply import Runner, RunOptions
from pgshift.ops.stopping import StopRequest
from pgshift.plan import plan_pending
from tests.plugins.memory import FakeClock, MemoryTarget
from tests.unit.test_apply_decisions import LOCKED, MIXED, V1, V2, migration


def _runner(target: MemoryTarget) -> Runner:
    clock = FakeClock()
    return Runner(target, RunOptions(stop_grace_ms=0), sleep=clock.sleep, clock=clock)


def _signal_during(target: MemoryTarget, runner: Runner, sql: str, signum: int) -> None:
    def on_send(sent: str) -> None:
        if sent == sql:
            runner.stop.on_signal(signum)

    target.scripted.on_send = on_send


def test_a_stop_during_a_transactional_step_lets_it_commit_and_starts_nothing_new() -> None:
    target = MemoryTarget()
    m1, m2 = migration(V1, "CREATE TABLE a (id int);"), migration(V2, "CREATE TABLE b (id int);")
    r = _runner(target)
    _signal_during(target, r, "CREATE TABLE a (id int)", signal.SIGTERM)
    with pytest.raises(Interrupted) as stopped:
        r.run(plan_pending((m1, m2), target.read_history()))
    assert stopped.value.exit_code == 143
    assert "nothing is half-done" in stopped.value.message and stopped.value.hint
    assert [a.version for a in target.read_history().applied] == [V1]
    assert target.events("interrupted") == [
        {"signal": "SIGTERM", "half_applied": False, "steps_done": 1, "statements_done": 0}
    ]
    assert target.events("run_finished") == []


def test_a_stop_inside_a_mixed_step_is_half_applied_and_resumes_once() -> None:
    target = MemoryTarget()
    m = migration(V1, MIXED)
    r = _runner(target)
    _signal_during(target, r, "INSERT INTO audit VALUES ('a')", signal.SIGINT)
    with pytest.raises(HalfApplied) as stopped:
        r.run(plan_pending((m,), target.read_history()))
    assert stopped.value.exit_code == 6
    assert "stopped after 1 of 3 statement(s)" in stopped.value.message
    progress = target.read_history().progress_of(V1, "apply")
    assert progress is not None and progress.statements_done == 1
    _runner(target).run(plan_pending((m,), target.read_history()))
    assert target.scripted.committed == [
        "INSERT INTO audit VALUES ('a')",
        "CREATE INDEX CONCURRENTLY items_idx ON items (id)",
        "INSERT INTO audit VALUES ('b')",
    ]


def test_a_stop_while_waiting_out_a_lock_retry_gives_up_cleanly() -> None:
    target = MemoryTarget()
    m = migration(V1, MIXED)
    target.scripted.answer("INSERT INTO audit VALUES ('a')", LOCKED, LOCKED, LOCKED)
    r = _runner(target)
    _signal_during(target, r, "INSERT INTO audit VALUES ('a')", signal.SIGTERM)
    with pytest.raises(Interrupted) as stopped:
        r.run(plan_pending((m,), target.read_history()))
    assert stopped.value.exit_code == 143
    assert target.scripted.ran.count("INSERT INTO audit VALUES ('a')") == 1  # no retry
    assert target.read_history().in_progress == ()  # its start left no trace
    assert target.events("interrupted")[0]["half_applied"] is False


def test_a_signal_before_anything_started_stops_at_once() -> None:
    request = StopRequest()
    request.waiting = True
    with pytest.raises(Interrupted) as stopped:
        request.on_signal(signal.SIGINT)
    assert stopped.value.exit_code == 130


def test_sigterm_waits_for_the_grace_period_and_sigint_does_not() -> None:
    cancels: list[str] = []
    request = StopRequest(grace_s=0)
    request.cancel = lambda: cancels.append("now")
    request.on_signal(signal.SIGINT)
    assert cancels == ["now"] and request.signal_name == "SIGINT"
    request = StopRequest(grace_s=3600)
    request.cancel = lambda: cancels.append("later")
    try:
        request.on_signal(signal.SIGTERM)
        assert cancels == ["now"]  # not yet: the timer runs
        assert signal.getitimer(signal.ITIMER_REAL)[0] > 0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    request.on_alarm(signal.SIGALRM)
    assert cancels == ["now", "later"]
    request.on_signal(signal.SIGTERM)  # a second signal does not wait again
    assert cancels == ["now", "later", "later"]


def test_the_grace_period_is_read_from_the_environment(tmp_path: Path) -> None:
    def grace(env: dict[str, str]) -> int:
        settings = load_settings({}, env, tmp_path)
        assert RunOptions.from_settings(settings).stop_grace_ms == settings.runner.stop_grace_ms
        return settings.runner.stop_grace_ms

    assert grace({}) == 10_000
    assert grace({"PGSHIFT_STOP_GRACE": "30"}) == 30_000  # a bare number is seconds
    assert grace({"PGSHIFT_STOP_GRACE": "500ms"}) == 500
    with pytest.raises(ConfigError, match="PGSHIFT_STOP_GRACE"):
        grace({"PGSHIFT_STOP_GRACE": "soon"})
