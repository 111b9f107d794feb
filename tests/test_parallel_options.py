"""`step.parallel`'s options: named branches, max_concurrency, completion options."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from infra.local import LocalRuntime
from sdk import App, AsyncContext, BatchResult, Context, Event, NonRetriableError, StepError
from tests.conftest import START
from tests.faults import crash_once, wrap_store


def boom(message: str):
    def fail() -> None:
        raise NonRetriableError(message)

    return fail


def test_named_branches_with_a_completion_option_return_a_batch_result_by_name(effects):
    app = App("t")

    @app.workflow("w", trigger="go")
    def flow(ctx: Context) -> dict:
        result = ctx.step.parallel(
            ("email", lambda: ctx.step.run("send-email", lambda: "sent")),
            ("sms", lambda: ctx.step.run("send-sms", boom("no signal"))),
            lambda: ctx.step.run("push", lambda: "pushed"),
            tolerated_failure_count=1,
        )
        assert isinstance(result, BatchResult)
        ctx.step.sleep("nap", "1m")
        effects.record("after-nap")
        return {
            "reason": result.completion_reason,
            "names": [item.name for item in result.items],
            "results": result.results(),
            "failed": [item.name for item in result.failed()],
        }

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        rt.advance(timedelta(minutes=2))
        assert rt.run(run_id).output == {
            "reason": "ALL_COMPLETED",
            "names": ["email", "sms", "branch-2"],
            "results": ["sent", "pushed"],
            "failed": ["sms"],
        }
        kinds = [(s.id, s.kind, s.depth) for s in rt.history(run_id)]
        assert kinds[:3] == [
            ("parallel", "parallel", 0),
            ("email", "branch", 1),
            ("send-email", "run", 2),
        ]


def test_without_options_a_failure_still_raises_and_named_branches_are_accepted():
    app = App("t")

    @app.workflow("w", trigger="go")
    def flow(ctx: Context) -> str:
        try:
            ctx.step.parallel(
                ("a", lambda: ctx.step.run("a", lambda: 1)),
                ("b", lambda: ctx.step.run("b", boom("b broke"))),
            )
        except StepError as error:
            return error.error_message
        return "?"

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        assert rt.run(run_id).output == "b broke"


def test_max_concurrency_one_runs_branches_in_order_and_starts_none_after_a_failure(effects):
    app = App("t")

    def branch(name: str, fails: bool = False):
        def run() -> Any:
            effects.record(name)
            return box["ctx"].step.run(name, boom(name) if fails else (lambda: name))

        return run

    box: dict[str, Context] = {}

    @app.workflow("w", trigger="go")
    def flow(ctx: Context) -> str:
        box["ctx"] = ctx
        try:
            ctx.step.parallel(branch("a"), branch("b", fails=True), branch("c"), max_concurrency=1)
        except StepError:
            return "failed"
        return "?"

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        assert rt.run(run_id).output == "failed"
        assert [name for name, _ in effects.log] == ["a", "b"]


def test_max_concurrency_zero_is_a_definition_error_and_parallel_of_nothing_is_empty():
    app = App("t")

    @app.workflow("zero", trigger="zero")
    def zero(ctx: Context) -> Any:
        return ctx.step.parallel(lambda: 1, max_concurrency=0)

    @app.workflow("none", trigger="none")
    def none(ctx: Context) -> Any:
        return [ctx.step.parallel(), ctx.step.parallel(min_successful=None)]

    with LocalRuntime(app, start=START) as rt:
        [bad] = rt.send(Event(name="zero"))
        assert rt.run(bad).error.type == "WorkflowDefinitionError"
        [empty] = rt.send(Event(name="none"))
        assert rt.run(empty).output == [[], []]


def test_min_successful_in_an_async_workflow_returns_as_soon_as_it_is_reached(effects):
    app = App("t")

    @app.workflow("w", trigger="go")
    async def flow(ctx: AsyncContext) -> list:
        async def waits_long() -> str:
            await ctx.step.sleep("long", "1d")
            effects.record("after-long")
            return "late"

        result = await ctx.step.parallel(
            ("slow", waits_long),
            ("quick", lambda: ctx.step.run("quick", lambda: "now")),
            min_successful=1,
        )
        return [result.completion_reason, [item.status for item in result.items]]

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        assert rt.run(run_id).output == ["MIN_SUCCESSFUL_REACHED", ["STARTED", "SUCCEEDED"]]
        rt.advance(timedelta(days=2))
        assert effects["after-long"] == 0


def test_a_crash_between_branch_records_resumes_without_running_a_step_twice(effects):
    app = App("t")

    @app.workflow("w", trigger="go")
    def flow(ctx: Context) -> list:
        result = ctx.step.parallel(
            *[
                (f"b{i}", lambda i=i: ctx.step.run(f"s{i}", lambda: effects.record(f"s{i}") or i))
                for i in range(4)
            ],
            tolerated_failure_count=0,
        )
        return result.results()

    crash = crash_once(lambda name, args, kwargs: name == "put_step" and args[1].kind == "branch")
    with LocalRuntime(app, start=START, ports_hook=wrap_store(after=crash)) as rt:
        [run_id] = rt.send(Event(name="go"))
        assert crash.state["fired"]
        assert rt.run(run_id).output == [0, 1, 2, 3]
        assert all(effects[f"s{i}"] == 1 for i in range(4))


def test_duplicate_deliveries_of_a_parallel_with_options(effects):
    app = App("t")

    @app.workflow("w", trigger="go")
    def flow(ctx: Context) -> list:
        result = ctx.step.parallel(
            lambda: ctx.step.run("a", lambda: effects.record("a") or "a"),
            lambda: ctx.step.run("b", lambda: effects.record("b") or "b"),
            min_successful=2,
        )
        return result.results()

    with LocalRuntime(app, start=START, deliveries_per_message=2) as rt:
        [run_id] = rt.send(Event(name="go"))
        assert rt.run(run_id).output == ["a", "b"]
        assert effects["a"] == effects["b"] == 1
