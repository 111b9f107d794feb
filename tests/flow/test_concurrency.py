"""`concurrency=[Concurrency(limit, key, scope)]`: at most `limit` runs of a key executing
steps at once; the others wait QUEUED, first in first out, and are woken when a slot frees.
A run that sleeps or waits holds no slot, and a slot of a killed invocation frees itself
when its lease expires."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from rich.console import Console

from engine.flow.ports import PutItem
from engine.ports import Ports
from infra.local import LocalRuntime, render, runtime
from sdk import App, Concurrency, Context, Event
from tests.conftest import START
from tests.faults import Intercept
from tests.flow.helpers import crash_once


class Nested:
    """Lets a step of one run send events while it executes (the local runtime delivers
    messages one at a time, so this is how two runs overlap)."""

    def __init__(self) -> None:
        self.rt: LocalRuntime | None = None
        self.during: dict[str, list[Event]] = {}
        self.executing: set[str] = set()
        self.sent_by: set[str] = set()
        self.peak = 0
        #: What `rt.runs()` said right after the nested events were sent.
        self.seen: list[tuple[str, str, str | None]] = []
        #: Called right after the nested events were sent.
        self.after: Callable[[], None] | None = None

    def step(self, run_key: str) -> str:
        self.executing.add(run_key)
        self.peak = max(self.peak, len(self.executing))
        try:
            events = self.during.pop(run_key, [])
            if events:
                self.sent_by.add(run_key)
            for event in events:
                assert self.rt is not None
                # In a thread of its own, as another Lambda invocation would be.
                thread = threading.Thread(target=self.rt.send, args=(event,))
                thread.start()
                thread.join()
            if self.rt is not None and self.seen == [] and run_key in self.sent_by:
                self.seen = [(r.run_id, r.status, r.waiting) for r in self.rt.runs()]
                if self.after is not None:
                    self.after()
        finally:
            self.executing.discard(run_key)
        return run_key


def app_with(nested: Nested, *limits: Concurrency, sleep: bool = False, **controls: Any) -> App:
    app = App("shop")

    @app.workflow("fulfil", trigger="order/placed", concurrency=list(limits), **controls)
    def fulfil(ctx: Context) -> str:
        name = ctx.event.data["order"]
        ctx.step.run("pack", nested.step, name)
        if sleep:
            ctx.step.sleep("cool-off", "1m")
            ctx.step.run("ship", nested.step, name)
        return name

    return app


def order(name: str, account: str = "a1") -> Event:
    return Event(name="order/placed", data={"order": name, "account": account}, id=name)


def run_of(rt: LocalRuntime, event_id: str) -> str:
    [run] = [run.run_id for run in rt.runs() if run.event_id == event_id]
    return run


def seen(nested: Nested, rt: LocalRuntime, event_id: str) -> tuple[str, str | None]:
    """A run's status and reason for waiting while the nesting step executed."""
    run_id = run_of(rt, event_id)
    [(status, waiting)] = [(s, w) for r, s, w in nested.seen if r == run_id]
    return status, waiting


def test_a_run_over_the_limit_waits_and_starts_when_the_slot_frees():
    nested = Nested()
    with LocalRuntime(app_with(nested, Concurrency(limit=1)), start=START) as rt:
        nested.rt = rt
        # GIVEN a run that, while it executes, makes a second event arrive
        nested.during["o1"] = [order("o2")]
        [first] = rt.send(order("o1"))
        [second] = [run.run_id for run in rt.runs() if run.run_id != first]
        # THEN the second never executed alongside the first, and ran once it was free
        assert nested.peak == 1
        assert rt.run(first).status == "COMPLETED"
        assert rt.run(second).status == "COMPLETED"
        assert rt.history(second)[0].attempts == 1

        # AND while it waited, it was QUEUED, saying why
        assert seen(nested, rt, "o2") == (
            "QUEUED",
            "concurrency: at most 1 at once; waiting since 2026-03-02 09:00:00",
        )


def test_keys_are_limited_apart_and_runs_show_names_the_key():
    nested = Nested()
    limit = Concurrency(limit=1, key="event.data.account")
    with LocalRuntime(app_with(nested, limit), start=START) as rt:
        nested.rt = rt
        # GIVEN a run of account a1 executing when another a1 order and an a2 order arrive
        nested.during["o1"] = [order("o2", "a1"), order("o3", "a2")]
        rt.send(order("o1", "a1"))
        # THEN the a2 order ran alongside; the a1 order waited for the slot of a1
        assert nested.peak == 2
        assert seen(nested, rt, "o3")[0] == "COMPLETED"
        status, waiting = seen(nested, rt, "o2")
        assert status == "QUEUED"
        assert waiting is not None and waiting.startswith(
            'concurrency: at most 1 at once (key event.data.account = "a1")'
        )
        assert [run.status for run in rt.runs()] == ["COMPLETED"] * 3


def test_runs_show_says_a_queued_run_waits_for_a_slot():
    nested = Nested()
    shown: list[str] = []

    def show() -> None:
        assert nested.rt is not None
        waiting = run_of(nested.rt, "o2")
        console = Console(width=300)
        with console.capture() as captured:
            render.show(
                render.timeline(nested.rt.run(waiting), nested.rt.history(waiting)), console
            )
        shown.append(captured.get())

    with LocalRuntime(app_with(nested, Concurrency(limit=1)), start=START) as rt:
        nested.rt = rt
        nested.during["o1"] = [order("o2")]
        nested.after = show
        rt.send(order("o1"))
        [text] = shown
        assert "not started yet: concurrency: at most 1 at once" in text


def test_a_sleeping_run_holds_no_slot():
    nested = Nested()
    with LocalRuntime(app_with(nested, Concurrency(limit=1), sleep=True), start=START) as rt:
        nested.rt = rt
        # GIVEN a run that packed and now sleeps for a minute
        first = rt.send(order("o1"))[0]
        assert rt.run(first).status == "SLEEPING"
        # WHEN another order arrives
        second = rt.send(order("o2"))[0]
        # THEN it starts at once (the sleeper holds no slot)
        assert rt.run(second).status == "SLEEPING"
        rt.advance("2m")
        assert [rt.run(run).status for run in (first, second)] == ["COMPLETED"] * 2


def test_a_limit_with_scope_app_is_shared_by_the_apps_workflows():
    nested = Nested()
    app = App("shop")
    shared = Concurrency(limit=1, key="event.data.account", scope="app")

    @app.workflow("fulfil", trigger="order/placed", concurrency=[shared])
    def fulfil(ctx: Context) -> str:
        return ctx.step.run("pack", nested.step, ctx.event.data["order"])

    @app.workflow("refund", trigger="order/refunded", concurrency=[shared])
    def refund(ctx: Context) -> str:
        return ctx.step.run("refund", nested.step, ctx.event.data["order"])

    with LocalRuntime(app, start=START) as rt:
        nested.rt = rt
        # GIVEN an order of a1 packing when a refund for a1 arrives
        refund_event = Event(name="order/refunded", data={"order": "r1", "account": "a1"}, id="r1")
        nested.during["o1"] = [refund_event]
        rt.send(order("o1"))
        # THEN the refund (another workflow) waited for the app's slot of a1, then ran
        status, waiting = seen(nested, rt, "r1")
        assert status == "QUEUED" and waiting is not None and "concurrency" in waiting
        assert nested.peak == 1
        assert [run.status for run in rt.runs()] == ["COMPLETED"] * 2


def test_a_backlog_is_woken_run_by_run_not_polled():
    nested = Nested()
    with LocalRuntime(app_with(nested, Concurrency(limit=1)), start=START) as rt:
        nested.rt = rt
        # GIVEN fifteen orders arriving while one run holds the only slot
        backlog = 15
        nested.during["o0"] = [order(f"o{n}") for n in range(1, backlog + 1)]
        rt.send(order("o0"))
        # THEN all ran, one at a time, in the order they arrived
        assert nested.peak == 1
        runs = rt.runs()
        assert [run.status for run in runs] == ["COMPLETED"] * (backlog + 1)
        # AND each queued run was delivered a bounded number of work messages (it queued
        # once, and was woken once when its turn came): nothing polled the queue
        assert rt.deliveries["work"] <= 3 * (backlog + 1)


def test_a_duplicate_delivery_takes_no_second_slot():
    nested = Nested()
    with LocalRuntime(
        app_with(nested, Concurrency(limit=1)), start=START, deliveries_per_message=2
    ) as rt:
        nested.rt = rt
        nested.during["o1"] = [order("o2"), order("o3")]
        rt.send(order("o1"))
        assert nested.peak == 1
        runs = rt.runs()
        assert [run.status for run in runs] == ["COMPLETED"] * 3
        assert [step.attempts for run in runs for step in rt.history(run.run_id)] == [1, 1, 1]


def test_a_redelivered_run_takes_back_its_own_slot_after_a_crash():
    # GIVEN an engine killed right after it took the only slot (before running the step)
    crash = crash_once("flow", takes_a_slot)
    nested = Nested()
    with LocalRuntime(app_with(nested, Concurrency(limit=1)), start=START, ports_hook=crash) as rt:
        nested.rt = rt
        nested.during["o1"] = [order("o2")]
        first = rt.send(order("o1"))[0]
        assert crash.state["fired"]
        # THEN the redelivered message took the run's own slot back: it ran, once, and
        # the order that came meanwhile waited for it
        assert seen(nested, rt, "o2")[0] == "QUEUED"
        assert nested.peak == 1
        assert [run.status for run in rt.runs()] == ["COMPLETED"] * 2
        assert rt.history(first)[0].attempts == 1


def test_a_slot_held_by_a_killed_invocation_frees_itself_when_its_lease_expires(monkeypatch):
    # GIVEN SQS returning a crashed invocation's message only after its visibility timeout
    # (5 minutes), as Lambda's event source mapping does
    monkeypatch.setattr(runtime.lambda_service, "retry_now", lambda *args: None)
    # AND an engine killed right after it took the only slot (before running the step)
    crash = crash_once("flow", takes_a_slot)
    nested = Nested()
    with LocalRuntime(app_with(nested, Concurrency(limit=1)), start=START, ports_hook=crash) as rt:
        nested.rt = rt
        first = rt.send(order("o1"))[0]
        assert crash.state["fired"] and rt.run(first).status == "RUNNING"
        # WHEN another order arrives
        second = rt.send(order("o2"))[0]
        assert rt.run(second).status == "QUEUED"
        # THEN it starts once the dead holder's lease (60 s) has expired, not 5 minutes later
        rt.advance("2m")
        assert rt.run(second).status == "COMPLETED"
        held = (rt.history(second)[0].started_at - START).total_seconds()
        assert 60 <= held < 62
        # AND the killed run, redelivered later, runs once
        rt.advance("5m")
        assert rt.run(first).status == "COMPLETED"
        assert rt.history(first)[0].attempts == 1
        assert nested.peak == 1


def takes_a_slot(name: str, args: tuple, kwargs: dict) -> bool:
    return name == "commit" and any(
        isinstance(change, PutItem) and change.key.sk == "SLOT" for change in args[0]
    )


def test_a_slot_is_taken_per_invocation_not_per_step():
    def flow_calls(steps: int) -> int:
        calls: list[str] = []

        def hook(ports: Ports) -> Ports:
            return replace(
                ports, flow=Intercept(ports.flow, before=lambda name, *_: calls.append(name))
            )

        app = App("shop")

        @app.workflow("fulfil", trigger="order/placed", concurrency=[Concurrency(limit=1)])
        def fulfil(ctx: Context) -> int:
            for index in range(steps):
                ctx.step.run(f"s{index}", int, index)
            return steps

        with LocalRuntime(app, start=START, ports_hook=hook) as rt:
            [run_id] = rt.send(order("o1"))
            assert rt.run(run_id).status == "COMPLETED"
        return len(calls)

    # Ten inline steps cost the flow store exactly what one does: the slot is taken once
    # when the invocation starts and released once when it ends.
    assert flow_calls(10) == flow_calls(1)
