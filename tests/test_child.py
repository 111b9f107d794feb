"""`step.child`: a scope of steps recorded once as one operation."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from infra.local import LocalRuntime
from sdk import App, AsyncContext, Context, Event, NonRetriableError, Retry, StepError
from tests.conftest import START
from tests.faults import crash_once, wrap_store


def test_a_child_returns_its_result_once_and_replays_it_without_calling_it(effects):
    app = App("t")

    @app.workflow("w", trigger="go")
    def flow(ctx: Context) -> dict:
        def checkout() -> dict:
            effects.record("checkout")
            order = ctx.step.run("reserve", lambda: effects.record("reserve") or "r-1")
            ctx.step.sleep("settle", "1m")
            return {"order": order, "paid": ctx.step.run("pay", lambda: True)}

        # The same step ids as inside the child do not collide with it: it is a scope.
        result = ctx.step.child("checkout", checkout)
        again = ctx.step.run("reserve", lambda: "outside")
        ctx.step.sleep("nap", "1h")
        return {"result": result, "again": again}

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        assert rt.run(run_id).status == "SLEEPING"
        rt.advance(timedelta(hours=2))
        assert rt.run(run_id).output == {
            "result": {"order": "r-1", "paid": True},
            "again": "outside",
        }
        # The child's function ran twice (before and after its sleep), never after it ended
        assert effects["checkout"] == 2 and effects["reserve"] == 1
        shown = [(s.id, s.kind, s.status, s.depth) for s in rt.history(run_id)]
        assert shown == [
            ("checkout", "child", "COMPLETED", 0),
            ("reserve", "run", "COMPLETED", 1),
            ("settle", "sleep", "COMPLETED", 1),
            ("pay", "run", "COMPLETED", 1),
            ("reserve", "run", "COMPLETED", 0),
            ("nap", "sleep", "COMPLETED", 0),
        ]


def test_a_failure_inside_raises_step_error_keeping_the_inner_type_and_replays_it(effects):
    app = App("t")

    @app.workflow("w", trigger="go", retries=Retry(max_attempts=1))
    def flow(ctx: Context) -> list:
        def body() -> None:
            effects.record("body")
            ctx.step.run("charge", lambda: (_ for _ in ()).throw(NonRetriableError("declined")))

        caught = []
        for _ in range(1):
            try:
                ctx.step.child("checkout", body)
            except StepError as error:
                caught.append([error.step_id, error.error_type, error.error_message])
        ctx.step.sleep("nap", "1m")
        return caught

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        rt.advance(timedelta(minutes=2))
        [[step_id, error_type, message]] = rt.run(run_id).output
        assert (step_id, error_type) == ("checkout", "NonRetriableError")
        assert "declined" in message
        assert effects["body"] == 1
        assert rt.history(run_id)[0].status == "FAILED"


def test_a_plain_exception_in_the_child_function_fails_the_child():
    app = App("t")

    @app.workflow("w", trigger="go")
    def flow(ctx: Context) -> str:
        try:
            ctx.step.child("c", lambda: {}["missing"])
        except StepError as error:
            return error.error_type
        return "?"

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        assert rt.run(run_id).output == "KeyError"


def test_a_child_with_a_serdes_stores_its_text():
    class Reversed:
        def serialize(self, value: Any) -> str:
            return json.dumps(value)[::-1]

        def deserialize(self, text: str) -> Any:
            return json.loads(text[::-1])

    app = App("t")

    @app.workflow("w", trigger="go")
    def flow(ctx: Context) -> Any:
        value = ctx.step.child("c", lambda: {"a": 1}, serdes=Reversed())
        ctx.step.sleep("nap", "1m")
        return value

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        rt.advance(timedelta(minutes=2))
        assert rt.run(run_id).output == {"a": 1}
        assert rt.history(run_id)[0].output == '}1 :"a"{'


def test_a_crash_inside_a_child_resumes_it_without_re_running_its_recorded_steps(effects):
    app = App("t")

    @app.workflow("w", trigger="go")
    def flow(ctx: Context) -> int:
        def body() -> int:
            first = ctx.step.run("one", lambda: effects.record("one") or 1)
            return first + ctx.step.run("two", lambda: effects.record("two") or 2)

        return ctx.step.child("c", body)

    crash = crash_once(lambda name, args, kwargs: name == "put_step" and args[1].id == "one")
    with LocalRuntime(app, start=START, ports_hook=wrap_store(after=crash)) as rt:
        [run_id] = rt.send(Event(name="go"))
        assert crash.state["fired"]
        assert rt.run(run_id).output == 3
        assert effects["one"] == effects["two"] == 1


def test_duplicate_deliveries_and_an_async_child(effects):
    app = App("t")

    @app.workflow("w", trigger="go")
    async def flow(ctx: AsyncContext) -> int:
        async def body() -> int:
            await ctx.step.sleep("pause", "1m")
            return await ctx.step.run("n", lambda: effects.record("n") or 7)

        return await ctx.step.child("c", body)

    with LocalRuntime(app, start=START, deliveries_per_message=2) as rt:
        [run_id] = rt.send(Event(name="go"))
        rt.advance(timedelta(minutes=2))
        assert rt.run(run_id).output == 7
        assert effects["n"] == 1


def test_replacing_a_child_with_a_step_is_non_deterministic_naming_both():
    app = App("t")
    version = {"child": True}

    @app.workflow("w", trigger="go")
    def flow(ctx: Context) -> str:
        if version["child"]:
            ctx.step.child("setup", lambda: ctx.step.sleep("wait", "1h"))
        else:
            ctx.step.run("setup-step", lambda: "x")
        return "done"

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        version["child"] = False
        rt.advance(timedelta(hours=2))
        error = rt.run(run_id).error
        assert error.type == "NonDeterminismError"
        assert "'setup' (child)" in error.message and "'setup-step' (run)" in error.message
