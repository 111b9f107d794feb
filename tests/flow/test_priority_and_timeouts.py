"""`priority=Priority(run=...)`: seconds a run is put ahead of (positive) or behind
(negative) the runs waiting with it. `timeouts=Timeouts(start, finish)`: a run that has
not started within `start` of its event, or not finished `finish` after it started, is
cancelled."""

from __future__ import annotations

import pytest

from infra.local import LocalRuntime, runtime
from sdk import App, Concurrency, Context, Event, Priority, Throttle, Timeouts
from tests.conftest import START
from tests.flow.helpers import crash_once
from tests.flow.test_concurrency import Nested, app_with, order, takes_a_slot


@pytest.mark.parametrize("deliveries", [1, 2], ids=["once", "every-message-twice"])
def test_a_higher_priority_run_is_woken_first_from_a_concurrency_queue(deliveries):
    nested = Nested()
    order: list[str] = []
    app = App("shop")

    @app.workflow(
        "fulfil",
        trigger="order/placed",
        concurrency=[Concurrency(limit=1)],
        priority=Priority(run="event.data.plan == 'enterprise' ? 120 : 0"),
    )
    def fulfil(ctx: Context) -> str:
        name = ctx.event.data["order"]

        def pack() -> str:
            order.append(name)
            return nested.step(name)

        return ctx.step.run("pack", pack)

    def placed(name: str, plan: str) -> Event:
        return Event(name="order/placed", data={"order": name, "plan": plan}, id=name)

    with LocalRuntime(app, start=START, deliveries_per_message=deliveries) as rt:
        nested.rt = rt
        # GIVEN two free orders, then an enterprise one, arriving while the slot is held
        nested.during["o0"] = [
            placed("o1", "free"),
            placed("o2", "free"),
            placed("o3", "enterprise"),
        ]
        rt.send(placed("o0", "free"))
        # THEN the enterprise order ran first of those that waited
        assert order == ["o0", "o3", "o1", "o2"]


def test_a_negative_priority_delays_the_start():
    app = App("shop")

    @app.workflow(
        "report", trigger="report/asked", priority=Priority(run="event.data.urgent ? 0 : -60")
    )
    def report(ctx: Context) -> str:
        return ctx.step.run("build", lambda: "built")

    with LocalRuntime(app, start=START) as rt:
        [later] = rt.send(Event(name="report/asked", data={"urgent": False}, id="r1"))
        [now] = rt.send(Event(name="report/asked", data={"urgent": True}, id="r2"))
        assert rt.run(now).status == "COMPLETED"
        assert rt.run(later).status == "QUEUED"
        assert rt.run(later).waiting.startswith("priority: priority -60 delays its start by 60s")
        rt.advance("1m")
        assert rt.run(later).status == "COMPLETED"
        assert (rt.history(later)[0].started_at - START).total_seconds() == 60


def throttled_with(timeouts: Timeouts) -> App:
    app = App("ai")

    @app.workflow(
        "summarise",
        trigger="doc/added",
        throttle=Throttle(limit=1, period="10m"),
        timeouts=timeouts,
    )
    def summarise(ctx: Context) -> str:
        ctx.step.run("call", lambda: "called")
        ctx.step.sleep("cool", ctx.event.data.get("sleep", "1s"))
        return "done"

    return app


@pytest.mark.parametrize("deliveries", [1, 2], ids=["once", "every-message-twice"])
def test_timeouts_start_cancels_a_run_that_cannot_start_in_time(deliveries):
    with LocalRuntime(
        throttled_with(Timeouts(start="15m")), start=START, deliveries_per_message=deliveries
    ) as rt:
        # GIVEN a throttle of one start per 10 minutes: three documents at once (the
        # first runs at once and sleeps a second)
        runs = [rt.send(Event(name="doc/added", data={}, id=f"d{n}"))[0] for n in range(3)]
        # THEN the second waits (it starts at 09:10, within 15 minutes of its event), and
        # the third, which could start only at 09:20, is cancelled at once, saying why
        assert [rt.run(run).status for run in runs] == ["SLEEPING", "QUEUED", "CANCELLED"]
        assert (
            "would start at 2026-03-02 09:20:00 (throttle), after its Timeouts start "
            "deadline 2026-03-02 09:15:00"
        ) in str(rt.run(runs[2]).to_json())
        assert rt.history(runs[2]) == []
        # AND it took no start from the throttle: a document at 09:20 starts then
        rt.advance("20m")
        assert rt.run(runs[1]).status == "COMPLETED"
        [fourth] = rt.send(Event(name="doc/added", data={}, id="d3"))
        assert rt.history(fourth)[0].started_at == rt.now()


@pytest.mark.parametrize("deliveries", [1, 2], ids=["once", "every-message-twice"])
def test_timeouts_finish_cancels_a_run_not_finished_in_time(deliveries):
    with LocalRuntime(
        throttled_with(Timeouts(finish="1h")), start=START, deliveries_per_message=deliveries
    ) as rt:
        [short] = rt.send(Event(name="doc/added", data={"sleep": "30m"}, id="d1"))
        rt.advance("10m")
        [long] = rt.send(Event(name="doc/added", data={"sleep": "2h"}, id="d2"))
        rt.advance("3h")
        assert rt.run(short).status == "COMPLETED"
        # the second started at 09:10 (the throttle) and was still sleeping an hour later
        assert rt.run(long).status == "CANCELLED"
        assert "not finished by 2026-03-02 10:10:00 (Timeouts finish)" in str(
            rt.run(long).to_json()
        )


def test_timeouts_start_cancels_a_run_queued_behind_a_killed_slot_holder(monkeypatch):
    # GIVEN a crashed invocation's message coming back only after 5 minutes, and an
    # engine killed right after it took the only slot
    monkeypatch.setattr(runtime.lambda_service, "retry_now", lambda *args: None)
    crash = crash_once("flow", takes_a_slot)
    nested = Nested()
    app = app_with(nested, Concurrency(limit=1), timeouts=Timeouts(start="30s"))
    with LocalRuntime(app, start=START, ports_hook=crash) as rt:
        first = rt.send(order("o1"))[0]
        assert crash.state["fired"]
        # WHEN another order queues for the slot, which the dead holder keeps for 60 s
        second = rt.send(order("o2"))[0]
        assert rt.run(second).status == "QUEUED"
        rt.advance("45s")
        # THEN it is cancelled 30 s after its event, never having started
        assert rt.run(second).status == "CANCELLED"
        assert rt.history(second) == []
        # AND the killed run still completes once its message returns
        rt.advance("6m")
        assert rt.run(first).status == "COMPLETED"
