"""Async workflows, and the invocation time budget."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from infra.local import LocalRuntime
from sdk import App, AsyncContext, Event, StepError
from tests.conftest import START


def test_an_async_workflow_awaits_steps_sleeps_and_parallel_branches(effects):
    app = App("t")

    async def fetch(name: str) -> str:
        await asyncio.sleep(0)
        effects.record(name)
        return name.upper()

    @app.workflow("async-flow", trigger="go")
    async def flow(ctx: AsyncContext) -> list[str]:
        first = await ctx.step.run("fetch-a", fetch, "a")
        await ctx.step.sleep("nap", "1h")
        b, c = await ctx.step.parallel(
            lambda: ctx.step.run("fetch-b", fetch, "b"),
            lambda: ctx.step.run("fetch-c", lambda: "C-sync"),
        )
        try:
            await ctx.step.run("fails", lambda: 1 / 0)
        except StepError as error:
            return [first, b, c, error.error_type]
        return []

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        assert rt.run(run_id).status == "SLEEPING"
        # An hour for the nap, then a few seconds for the failing step's retry backoffs.
        rt.advance(timedelta(hours=1, minutes=5))
        run = rt.run(run_id)
        assert run.status == "COMPLETED"
        assert run.output == ["A", "B", "C-sync", "ZeroDivisionError"]
        assert effects.calls == {"a": 1, "b": 1}


def test_a_run_that_exhausts_the_time_budget_continues_in_a_new_invocation(effects):
    app = App("t")

    @app.workflow("long", trigger="go")
    def flow(ctx: AsyncContext) -> int:
        for index in range(4):
            ctx.step.run(f"work-{index}", lambda i=index: effects.record(f"w{i}"))
        return 4

    # A margin larger than the whole Lambda timeout: every step must leave the Lambda first.
    with LocalRuntime(
        app,
        start=START,
        lambda_timeout=timedelta(minutes=1),
        settings={"suspend_margin": timedelta(minutes=2)},
    ) as rt:
        [run_id] = rt.send(Event(name="go"))
        run = rt.run(run_id)
        assert run.status == "COMPLETED"
        assert all(count == 1 for count in effects.calls.values())
        assert len(effects.calls) == 4
        # Each invocation ran one new step (always at least one, so the run progresses),
        # then handed over to a fresh invocation; the last one also completed the run.
        assert rt.deliveries["work"] == 4
