"""Plugins: `App(name, plugins=[...])`, each event reported once across replays."""

from __future__ import annotations

import collections
import logging
import threading
from datetime import timedelta
from typing import Any

import pytest

from infra.local import LocalRuntime
from sdk import App, AsyncContext, Context, Event, PluginInfo, Retry, WorkflowDefinitionError
from tests.conftest import START


class Recorder:
    """A plugin with every hook: notes (hook, step id, kind, status, attempt, first)."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self._lock = threading.Lock()

    def _note(self, hook: str, info: PluginInfo) -> None:
        with self._lock:
            self.events.append(
                (hook, info.step_id, info.kind, info.status, info.attempt, info.first)
            )

    def on_invocation_start(self, info: PluginInfo) -> None:
        self._note("invocation_start", info)

    def on_invocation_end(self, info: PluginInfo) -> None:
        self._note("invocation_end", info)

    def on_operation_start(self, info: PluginInfo) -> None:
        self._note("operation_start", info)

    def on_operation_end(self, info: PluginInfo) -> None:
        self._note("operation_end", info)

    def on_attempt_start(self, info: PluginInfo) -> None:
        self._note("attempt_start", info)

    def on_attempt_end(self, info: PluginInfo) -> None:
        self._note("attempt_end", info)


def recorded_app(recorder: Recorder, handed: list[str], *more_plugins: object) -> App:
    app = App("t", plugins=[recorder, *more_plugins])
    flaky_calls = []

    def flaky() -> str:
        flaky_calls.append(1)
        if len(flaky_calls) == 1:
            raise ValueError("once")
        return "ok"

    @app.workflow("w", trigger="go", retries=Retry(max_attempts=2, initial_delay="1s", jitter=0))
    def flow(ctx: Context) -> list:
        ctx.step.run("a", lambda: 1)
        ctx.step.run("flaky", flaky)
        ctx.step.sleep("nap", "1m")
        cb = ctx.step.create_callback("cb")
        handed.append(cb.id)
        decision = cb.result()
        squares = ctx.step.map("m", [1, 2], lambda v, i: v * v)
        return [decision, squares]

    return app


def test_each_event_is_reported_once_though_the_run_replays_in_four_invocations():
    recorder, handed = Recorder(), []
    with LocalRuntime(recorded_app(recorder, handed), start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        rt.advance(timedelta(minutes=2))
        rt.complete_callback(handed[-1], "yes")
        assert rt.run(run_id).output == ["yes", [1, 4]]
    events = recorder.events
    invocations = [e for e in events if e[0].startswith("invocation")]
    assert invocations == [
        ("invocation_start", None, None, "RUNNING", None, True),
        ("invocation_end", None, None, "SLEEPING", None, True),  # the retry's backoff
        ("invocation_start", None, None, "RUNNING", None, False),
        ("invocation_end", None, None, "SLEEPING", None, False),  # the nap
        ("invocation_start", None, None, "RUNNING", None, False),
        ("invocation_end", None, None, "WAITING", None, False),  # the callback
        ("invocation_start", None, None, "RUNNING", None, False),
        ("invocation_end", None, None, "COMPLETED", None, False),
    ]
    operations = [e[:5] for e in events if not e[0].startswith("invocation")]
    # Steps, in order (the map's items may interleave, so they are counted apart)
    plain = [e for e in operations if e[1] not in ("m[0]", "m[1]")]
    assert plain == [
        ("operation_start", "a", "run", "STARTED", None),
        ("attempt_start", "a", "run", "STARTED", 1),
        ("attempt_end", "a", "run", "COMPLETED", 1),
        ("operation_end", "a", "run", "COMPLETED", 1),
        ("operation_start", "flaky", "run", "STARTED", None),
        ("attempt_start", "flaky", "run", "STARTED", 1),
        ("attempt_end", "flaky", "run", "FAILED", 1),
        ("attempt_start", "flaky", "run", "STARTED", 2),
        ("attempt_end", "flaky", "run", "COMPLETED", 2),
        ("operation_end", "flaky", "run", "COMPLETED", 2),
        ("operation_start", "nap", "sleep", "STARTED", None),
        ("operation_end", "nap", "sleep", "COMPLETED", None),
        ("operation_start", "cb", "callback", "STARTED", None),
        ("operation_end", "cb", "callback", "COMPLETED", None),
        ("operation_start", "m", "map", "STARTED", None),
        ("operation_end", "m", "map", "COMPLETED", None),
    ]
    items = collections.Counter((e[0], e[1]) for e in operations if e[1] in ("m[0]", "m[1]"))
    assert items == {
        ("operation_start", "m[0]"): 1,
        ("operation_end", "m[0]"): 1,
        ("operation_start", "m[1]"): 1,
        ("operation_end", "m[1]"): 1,
    }


class Broken:
    def on_operation_start(self, info: PluginInfo) -> None:
        raise RuntimeError("plugin bug")

    def on_invocation_end(self, info: PluginInfo) -> None:
        raise RuntimeError("plugin bug")


class AsyncHook:
    async def on_operation_end(self, info: PluginInfo) -> None:
        raise AssertionError("never awaited")


def test_a_plugin_that_raises_is_logged_and_never_fails_the_run(caplog):
    recorder, handed = Recorder(), []
    app = recorded_app(recorder, handed, Broken(), AsyncHook())
    with LocalRuntime(app, start=START) as rt, caplog.at_level(logging.WARNING, "stepline"):
        [run_id] = rt.send(Event(name="go"))
        rt.advance(timedelta(minutes=2))
        rt.complete_callback(handed[-1], "yes")
        assert rt.run(run_id).status == "COMPLETED"
    assert "plugin Broken raised in on_operation_start" in caplog.text
    assert "plugin AsyncHook: on_operation_end is a coroutine function" in caplog.text
    # The other plugin heard everything all the same
    assert ("invocation_end", None, None, "COMPLETED", None, False) in recorder.events


def test_a_wait_for_event_an_invoke_and_a_failed_run_are_reported():
    recorder = Recorder()
    app = App("t", plugins=[recorder])
    app.workflow("child")(lambda ctx: ctx.step.run("c", lambda: 2))

    @app.workflow("w", trigger="go", retries=Retry(max_attempts=1))
    def flow(ctx: Context) -> None:
        ctx.step.wait_for_event("paid", event="paid", timeout="1h")
        ctx.step.invoke("price", workflow="child")
        ctx.step.run("boom", lambda: 1 / 0)

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        rt.send(Event(name="paid"))
        assert rt.run(run_id).status == "FAILED"
    ends = [(e[1], e[3]) for e in recorder.events if e[0] == "operation_end"]
    assert ("paid", "COMPLETED") in ends and ("price", "COMPLETED") in ends
    assert ("boom", "FAILED") in ends
    assert ends.count(("paid", "COMPLETED")) == 1
    finals = [e for e in recorder.events if e[0] == "invocation_end"]
    assert finals[-1][3] == "FAILED"


def test_a_plugin_without_any_hook_is_a_definition_error():
    with pytest.raises(WorkflowDefinitionError, match="has none of the hooks"):
        App("t", plugins=[object()])
    with pytest.raises(WorkflowDefinitionError, match="list of plugin objects"):
        App("t", plugins=Recorder())  # type: ignore[arg-type]


def test_duplicate_deliveries_and_an_async_workflow_report_each_operation_once():
    recorder = Recorder()
    app = App("t", plugins=[recorder])

    @app.workflow("w", trigger="go")
    async def flow(ctx: AsyncContext) -> Any:
        one = await ctx.step.run("a", lambda: 1)
        await ctx.step.sleep("nap", "1m")
        return one + await ctx.step.child("c", lambda: ctx.step.run("b", lambda: 2))

    with LocalRuntime(app, start=START, deliveries_per_message=2) as rt:
        [run_id] = rt.send(Event(name="go"))
        rt.advance(timedelta(minutes=2))
        assert rt.run(run_id).output == 3
    operations = collections.Counter(
        (e[0], e[1]) for e in recorder.events if e[0].startswith("operation")
    )
    assert operations == {
        (hook, step): 1
        for hook in ("operation_start", "operation_end")
        for step in ("a", "nap", "c", "b")
    }
    firsts = [e[5] for e in recorder.events if e[0] == "invocation_start"]
    assert firsts[0] is True and not any(firsts[1:])
