"""send_event, invoke and parallel."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from examples import app as shop
from examples import services
from infra.local import LocalRuntime
from sdk import App, Context, Event, NonRetriableError, Retry, StepError
from tests.conftest import START
from tests.faults import crash_once, wrap_store


@pytest.fixture(autouse=True)
def fresh_services():
    services.reset()
    yield
    services.reset()


def announcer_app(effects) -> App:
    app = App("t")

    @app.workflow("announce", trigger="user/created")
    def announce(ctx: Context) -> list[str]:
        ids = ctx.step.send_event(
            "announce", [Event(name="user/welcomed", data={"user": ctx.event.data["user"]})]
        )
        ctx.step.sleep("settle", "1m")
        return ids

    @app.workflow("welcomed-listener", trigger="user/welcomed")
    def listener(ctx: Context) -> str:
        effects.record("listener")
        return ctx.event.id

    return app


def test_send_event_publishes_once_and_a_replay_returns_the_recorded_ids(effects):
    with LocalRuntime(announcer_app(effects), start=START) as rt:
        [run_id] = rt.send(Event(name="user/created", data={"user": "u1"}))
        rt.advance(timedelta(minutes=2))
        run = rt.run(run_id)
        assert run.status == "COMPLETED"
        [sent_id] = run.output
        # The listener ran once for the sent event, which carries the derived id.
        [listener] = rt.runs(workflow="welcomed-listener")
        assert listener.output == sent_id
        assert effects["listener"] == 1


def test_send_event_cut_off_by_a_crash_is_resent_with_the_same_id_and_starts_nothing_twice(effects):
    app = announcer_app(effects)
    # Crash after publishing, before the send step is recorded: the replay publishes again.
    crash = crash_once(
        lambda name, args, kwargs: name == "put_step" and args[1].kind == "send_event"
    )
    with LocalRuntime(app, start=START, ports_hook=wrap_store(before=crash)) as rt:
        [run_id] = rt.send(Event(name="user/created", data={"user": "u1"}))
        rt.advance(timedelta(minutes=2))
        assert crash.state["fired"]
        assert rt.run(run_id).status == "COMPLETED"
        # Two deliveries of the event reached the events queue, but with one id: one run.
        assert rt.deliveries["events"] == 3  # user/created + user/welcomed twice
        assert len(rt.runs(workflow="welcomed-listener")) == 1
        assert effects["listener"] == 1


def invoking_app(child_body, *, timeout=None) -> App:
    app = App("t")

    @app.workflow("child", retries=Retry(max_attempts=1))
    def child(ctx: Context):
        return child_body(ctx)

    @app.workflow("parent", trigger="go")
    def parent(ctx: Context) -> dict:
        try:
            result = ctx.step.invoke(
                "call-child", workflow="child", data={"n": 21}, timeout=timeout
            )
        except StepError as error:
            return {"error": error.error_type, "message": error.error_message}
        return {"result": result}

    return app


def test_invoke_returns_the_child_output_and_the_child_gets_the_data():
    def child(ctx):
        ctx.step.sleep("think", "10m")
        return ctx.step.run("double", lambda: ctx.event.data["n"] * 2)

    with LocalRuntime(invoking_app(child), start=START) as rt:
        [parent_id] = rt.send(Event(name="go"))
        assert rt.run(parent_id).status == "WAITING"
        [child_run] = rt.runs(workflow="child")
        assert child_run.parent_run_id == parent_id
        assert child_run.event_name == "stepline/invoked"
        rt.advance(timedelta(minutes=11))
        assert rt.run(child_run.run_id).status == "COMPLETED"
        assert rt.run(parent_id).output == {"result": 42}
        [step] = rt.history(parent_id)
        assert step.kind == "invoke" and step.status == "COMPLETED"


def test_a_failing_child_raises_step_error_in_the_parent():
    def child(ctx):
        ctx.step.run("explode", lambda: (_ for _ in ()).throw(NonRetriableError("no stock")))

    with LocalRuntime(invoking_app(child), start=START) as rt:
        [parent_id] = rt.send(Event(name="go"))
        out = rt.run(parent_id).output
        assert out["error"] == "StepError"
        assert "no stock" in out["message"]
        assert "failed" in out["message"]


def test_a_child_that_outlives_the_timeout_raises_step_error_in_the_parent():
    def child(ctx):
        ctx.step.sleep("forever", "30d")

    with LocalRuntime(invoking_app(child, timeout="1h"), start=START) as rt:
        [parent_id] = rt.send(Event(name="go"))
        rt.advance(timedelta(hours=1, seconds=1))
        out = rt.run(parent_id).output
        assert out["error"] == "InvokeTimeoutError"
        [step] = rt.history(parent_id)
        assert step.status == "TIMED_OUT"


def test_a_child_that_finishes_inline_before_the_parent_records_its_wait_still_counts():
    # The child completes within the same drain as the parent's invoke; no polling needed.
    with LocalRuntime(invoking_app(lambda ctx: "instant"), start=START) as rt:
        [parent_id] = rt.send(Event(name="go"))
        assert rt.run(parent_id).output == {"result": "instant"}


def test_invoking_an_unknown_workflow_fails_the_run_clearly():
    app = App("t")
    app.workflow("p", trigger="go")(lambda ctx: ctx.step.invoke("x", workflow="nope"))
    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        error = rt.run(run_id).error
        assert error.type == "WorkflowDefinitionError"
        assert "no workflow 'nope'" in error.message


def test_cancelling_a_parent_cancels_its_child_and_a_cancelled_child_fails_its_parents_step():
    def child(ctx):
        ctx.step.sleep("long", "2d")

    with LocalRuntime(invoking_app(child), start=START) as rt:
        [parent_id] = rt.send(Event(name="go"))
        [child_run] = rt.runs(workflow="child")
        rt.cancel(child_run.run_id)
        assert rt.run(parent_id).output["message"].startswith(f"child run {child_run.run_id}")

    with LocalRuntime(invoking_app(child), start=START) as rt:
        [parent_id] = rt.send(Event(name="go"))
        [child_run] = rt.runs(workflow="child")
        rt.cancel(parent_id)
        assert rt.run(child_run.run_id).status == "CANCELLED"


def test_parallel_branches_run_concurrently_and_return_in_argument_order():
    app = App("t")
    both_started = threading.Barrier(2, timeout=5)

    def meet(name):
        both_started.wait()  # deadlocks unless the two branches really run at once
        return name

    @app.workflow("fan-out", trigger="go")
    def flow(ctx: Context) -> list[str]:
        return ctx.step.parallel(
            lambda: ctx.step.run("left", meet, "L"),
            lambda: ctx.step.run("right", meet, "R"),
        )

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        assert rt.run(run_id).output == ["L", "R"]


def test_parallel_step_positions_do_not_depend_on_completion_order():
    app = App("t")

    def run(second_finishes_first: bool) -> list[tuple[str, str]]:
        gate = threading.Event()

        def first():
            if second_finishes_first:
                gate.wait(5)
            return "a"

        def second():
            gate.set()
            return "b"

        local = App("t")

        @local.workflow("order", trigger="go")
        def flow(ctx: Context) -> list[str]:
            return ctx.step.parallel(
                lambda: ctx.step.run("x", first), lambda: ctx.step.run("x", second)
            )

        with LocalRuntime(local, start=START) as rt:
            [run_id] = rt.send(Event(name="go"))
            assert rt.run(run_id).output == ["a", "b"]
            return [(step.position, step.output) for step in rt.history(run_id)]

    assert run(False) == run(True) == [("00000.00000.00000", "a"), ("00000.00001.00000", "b")]
    del app


def test_a_failing_branch_lets_the_others_settle_and_record_before_step_error(effects):
    app = App("t")

    def slow_ok():
        effects.record("slow")
        return "fine"

    @app.workflow("one-fails", trigger="go", retries=Retry(max_attempts=1))
    def flow(ctx: Context) -> str:
        try:
            ctx.step.parallel(
                lambda: ctx.step.run("bad", lambda: 1 / 0),
                lambda: ctx.step.run("good", slow_ok),
            )
        except StepError as error:
            return error.step_id
        return "no error"

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        assert rt.run(run_id).output == "bad"
        statuses = {step.id: step.status for step in rt.history(run_id)}
        assert statuses == {"bad": "FAILED", "good": "COMPLETED"}


def test_a_sleeping_branch_suspends_the_run_and_resumes_without_rerunning_the_others(effects):
    app = App("t")

    @app.workflow("mixed", trigger="go")
    def flow(ctx: Context) -> list:
        def slow_branch():
            ctx.step.sleep("wait", "1h")
            return ctx.step.run("after-wait", lambda: effects.record("after") or "late")

        return ctx.step.parallel(
            slow_branch,
            lambda: ctx.step.run("quick", lambda: effects.record("quick") or "now"),
        )

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        assert rt.run(run_id).status == "SLEEPING"
        assert effects.calls == {"quick": 1}
        rt.advance(timedelta(hours=1, seconds=1))
        assert rt.run(run_id).output == ["late", "now"]
        assert effects.calls == {"quick": 1, "after": 1}


def test_the_async_orders_example_invokes_billing_and_ships():
    with LocalRuntime(shop, start=START) as rt:
        [run_id] = rt.send(
            Event(
                name="shop/order.placed",
                data={
                    "customerId": "c1",
                    "amount": 1200,
                    "skus": ["tea", "cup"],
                    "placedAt": START.isoformat(),
                },
            )
        )
        run = rt.run(run_id)
        assert run.status == "COMPLETED", run.error
        assert run.output["status"] == "shipped"
        assert ("c1", "shipped") in services.mailer.sent
        [billing] = rt.runs(workflow="billing")
        assert billing.parent_run_id == run_id


def test_parallel_of_no_branches_returns_an_empty_list_in_sync_and_async_workflows():
    app = App("t")

    @app.workflow("none-sync", trigger="go")
    def sync_flow(ctx: Context) -> list:
        branches: list = []  # e.g. one branch per item of an empty list
        results = ctx.step.parallel(*branches)
        ctx.step.run("after", lambda: "ok")
        return results

    @app.workflow("none-async", trigger="go")
    async def async_flow(ctx) -> list:
        results = await ctx.step.parallel()
        await ctx.step.run("after", lambda: "ok")
        return results

    with LocalRuntime(app, start=START) as rt:
        for run_id in rt.send(Event(name="go")):
            run = rt.run(run_id)
            assert (run.status, run.output) == ("COMPLETED", []), run.error
