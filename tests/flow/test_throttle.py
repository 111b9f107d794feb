"""`throttle=Throttle(limit, period, key, burst)`: runs start at most `limit` per `period`
per key, spaced evenly; the excess waits QUEUED, first in first out, and none is dropped."""

from __future__ import annotations

from datetime import timedelta

from rich.console import Console

from engine.flow.ports import WriteRun
from infra.local import LocalRuntime, render
from sdk import App, Context, Event, Throttle
from tests.conftest import START
from tests.flow.helpers import crash_once


def app_with(throttle: Throttle) -> App:
    app = App("ai")

    @app.workflow("summarise", trigger="doc/added", throttle=throttle)
    def summarise(ctx: Context) -> int:
        return ctx.step.run("call", lambda: ctx.event.data["n"])

    return app


def started_at(rt: LocalRuntime, run_id: str):
    [step] = rt.history(run_id)
    return step.started_at


def test_runs_over_the_limit_wait_and_start_evenly_in_order():
    with LocalRuntime(app_with(Throttle(limit=2, period="1m")), start=START) as rt:
        # GIVEN six documents at once, and a throttle of two runs a minute
        runs = [rt.send(Event(name="doc/added", data={"n": n}, id=f"d{n}"))[0] for n in range(6)]
        # THEN the first starts now and the others wait, each saying until when
        assert [rt.run(run).status for run in runs] == ["COMPLETED"] + ["QUEUED"] * 5
        waiting = rt.run(runs[1]).waiting
        assert waiting == (
            "throttle: at most 2 starts per 1m; starts at 2026-03-02 09:00:30; "
            "waiting since 2026-03-02 09:00:00"
        )
        # WHEN three minutes pass
        rt.advance("3m")
        # THEN they all ran, one every 30 seconds, in the order they arrived
        assert [rt.run(run).status for run in runs] == ["COMPLETED"] * 6
        offsets = [(started_at(rt, run) - START).total_seconds() for run in runs]
        assert offsets == [0, 30, 60, 90, 120, 150]


def test_a_burst_starts_together_and_keys_are_throttled_apart():
    throttle = Throttle(limit=3, period="1m", key="event.data.user", burst=3)
    with LocalRuntime(app_with(throttle), start=START) as rt:
        mine = [
            rt.send(Event(name="doc/added", data={"n": n, "user": "u1"}, id=f"a{n}"))[0]
            for n in range(4)
        ]
        theirs = rt.send(Event(name="doc/added", data={"n": 9, "user": "u2"}, id="b"))[0]
        assert [rt.run(run).status for run in mine] == ["COMPLETED"] * 3 + ["QUEUED"]
        assert rt.run(theirs).status == "COMPLETED"
        rt.advance("1m")
        assert (started_at(rt, mine[3]) - START).total_seconds() == 20


def test_runs_show_says_why_a_throttled_run_waits():
    with LocalRuntime(app_with(Throttle(limit=1, period="1h")), start=START) as rt:
        rt.send(Event(name="doc/added", data={"n": 0}, id="d0"))
        [waiting] = rt.send(Event(name="doc/added", data={"n": 1}, id="d1"))
        view = rt.run(waiting)
        console = Console(width=300)
        with console.capture() as captured:
            render.show(render.timeline(view, rt.history(waiting)), console)
        assert (
            "not started yet: throttle: at most 1 starts per 1h; starts at 2026-03-02 10:00:00"
            in captured.get()
        )
        assert view.to_json()["waiting"] == view.waiting


def test_a_redelivered_start_reserves_no_second_start():
    with LocalRuntime(
        app_with(Throttle(limit=1, period="1m")), start=START, deliveries_per_message=2
    ) as rt:
        runs = [rt.send(Event(name="doc/added", data={"n": n}, id=f"d{n}"))[0] for n in range(3)]
        rt.advance("3m")
        offsets = [(started_at(rt, run) - START).total_seconds() for run in runs]
        assert offsets == [0, 60, 120]


def test_a_crash_after_the_reservation_keeps_the_reserved_start():
    # GIVEN an engine that dies right after writing a run's reserved start (before its
    # timer was armed)
    crash = crash_once(
        "flow",
        lambda name, args, kwargs: (
            name == "commit"
            and any(
                isinstance(change, WriteRun) and change.run.status == "QUEUED" for change in args[0]
            )
        ),
    )
    with LocalRuntime(
        app_with(Throttle(limit=1, period="1m")), start=START, ports_hook=crash
    ) as rt:
        runs = [rt.send(Event(name="doc/added", data={"n": n}, id=f"d{n}"))[0] for n in range(2)]
        assert crash.state["fired"]
        # WHEN time passes
        rt.advance(timedelta(minutes=2))
        # THEN the redelivered message re-armed the reserved start: it ran then, once
        # (the redelivery came a millisecond after the crash)
        offsets = [(started_at(rt, run) - START).total_seconds() for run in runs]
        assert offsets[0] == 0 and 60 <= offsets[1] < 61
        assert [step.attempts for run in runs for step in rt.history(run)] == [1, 1]
