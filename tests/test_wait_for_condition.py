"""`step.wait_for_condition`: a durable poll, one record per poll, across invocations."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from infra.local import LocalRuntime
from sdk import App, AsyncContext, Context, Event, StepError
from tests.conftest import START
from tests.faults import FaultPlan


def poll_app(effects, *, ready_after: int, **options: Any) -> App:
    app = App("t")

    def check(state: dict) -> dict:
        effects.record("check", state["polls"])
        polls = state["polls"] + 1
        return {"polls": polls, "status": "READY" if polls >= ready_after else "PENDING"}

    @app.workflow("w", trigger="go")
    def flow(ctx: Context) -> Any:
        try:
            return ctx.step.wait_for_condition(
                "job-done",
                check,
                initial_state={"polls": 0, "status": "NEW"},
                until=lambda state: state["status"] == "READY",
                **options,
            )
        except StepError as error:
            return {"error": error.error_type, "message": error.error_message}

    return app


def test_a_poll_sleeps_between_checks_and_returns_the_state_once_the_condition_holds(effects):
    with LocalRuntime(poll_app(effects, ready_after=3, interval="30s"), start=START) as rt:
        # GIVEN a job that is ready at the third check, polled every 30 s
        [run_id] = rt.send(Event(name="go"))
        # THEN the run sleeps between checks (no thread waits)...
        assert rt.run(run_id).status == "SLEEPING"
        assert effects["check"] == 1
        [step] = rt.history(run_id)
        assert (step.status, step.attempts, step.output["polls"]) == ("RETRYING", 1, 1)
        rt.advance(timedelta(seconds=31))
        assert effects["check"] == 2
        rt.advance(timedelta(seconds=31))
        # ...and each check got the state the previous one recorded
        assert rt.run(run_id).output == {"polls": 3, "status": "READY"}
        assert [args[0] for _, args in effects.log] == [0, 1, 2]
        [step] = rt.history(run_id)
        assert (step.status, step.attempts) == ("COMPLETED", 3)


def test_past_max_attempts_the_poll_fails_naming_the_last_state(effects):
    app = poll_app(effects, ready_after=10, interval="1m", max_attempts=2)
    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        rt.advance(timedelta(minutes=5))
        output = rt.run(run_id).output
        assert output["error"] == "ConditionNotMetError"
        assert "did not hold after 2 polls" in output["message"]
        assert '"polls": 2' in output["message"]
        assert effects["check"] == 2


def test_an_exception_in_check_fails_the_poll():
    app = App("t")

    @app.workflow("w", trigger="go")
    def flow(ctx: Context) -> str:
        try:
            ctx.step.wait_for_condition("p", lambda s: 1 / 0, until=lambda s: True)
        except StepError as error:
            return error.error_type
        return "?"

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        assert rt.run(run_id).output == "ZeroDivisionError"


def test_a_crash_between_polls_resumes_from_the_recorded_state(effects):
    plan = FaultPlan("after-suspension-record", occurrence=1)
    with LocalRuntime(
        poll_app(effects, ready_after=2, interval="10s"), start=START, ports_hook=plan.hook
    ) as rt:
        [run_id] = rt.send(Event(name="go"))
        rt.advance(timedelta(seconds=30))
        assert plan.fired == 1
        assert rt.run(run_id).output == {"polls": 2, "status": "READY"}
        assert [args[0] for _, args in effects.log] == [0, 1]


def test_duplicate_deliveries_poll_once_per_interval(effects):
    with LocalRuntime(
        poll_app(effects, ready_after=3, interval="10s"), start=START, deliveries_per_message=2
    ) as rt:
        [run_id] = rt.send(Event(name="go"))
        rt.advance(timedelta(minutes=1))
        assert rt.run(run_id).output["polls"] == 3
        assert effects["check"] == 3


def test_an_async_poll_with_async_check_and_until():
    app = App("t")

    async def check(n: int) -> int:
        return n + 1

    async def until(n: int) -> bool:
        return n >= 2

    @app.workflow("w", trigger="go")
    async def flow(ctx: AsyncContext) -> int:
        return await ctx.step.wait_for_condition("p", check, initial_state=0, until=until)

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        rt.advance(timedelta(seconds=10))  # the default interval is 5 s
        assert rt.run(run_id).output == 2
