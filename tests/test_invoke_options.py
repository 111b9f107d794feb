"""`step.invoke`'s options: `payload_serdes`, `result_serdes`, `tenant_id`."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from typing import Any

from rich.console import Console

from infra.local import LocalRuntime
from infra.local.render import timeline
from sdk import App, AsyncContext, Context, Event, StepError
from tests.conftest import START
from tests.faults import crash_once, wrap_store


class Tagged:
    """A serdes that marks its text, so a test can tell it was used."""

    def serialize(self, value: Any) -> str:
        return "tagged:" + json.dumps(value)

    def deserialize(self, text: str) -> Any:
        assert text.startswith("tagged:"), text
        return json.loads(text.removeprefix("tagged:"))


def invoking_app(**options: Any) -> App:
    app = App("t")

    @app.workflow("child")
    def child(ctx: Context) -> Any:
        order = Tagged().deserialize(ctx.event.data["payload"])
        return Tagged().serialize({"total": sum(order["lines"])})

    @app.workflow("parent", trigger="go")
    def parent(ctx: Context) -> Any:
        result = ctx.step.invoke(
            "price",
            workflow="child",
            data={"lines": [3, 4]},
            payload_serdes=Tagged(),
            result_serdes=Tagged(),
            **options,
        )
        ctx.step.sleep("nap", "1m")
        return result

    return app


def test_payload_and_result_serdes_carry_values_as_their_text_both_ways():
    with LocalRuntime(invoking_app(), start=START) as rt:
        [parent_id] = rt.send(Event(name="go"))
        rt.advance(timedelta(minutes=2))
        assert rt.run(parent_id).output == {"total": 7}
        [child] = rt.runs(workflow="child")
        assert rt.run(child.run_id).event.data == {"payload": 'tagged:{"lines": [3, 4]}'}
        assert rt.run(child.run_id).output == 'tagged:{"total": 7}'


def test_a_tenant_id_is_recorded_on_the_child_run_and_shown_by_runs_show():
    with LocalRuntime(invoking_app(tenant_id="acme"), start=START) as rt:
        [parent_id] = rt.send(Event(name="go"))
        [child] = rt.runs(workflow="child")
        view = rt.run(child.run_id)
        assert view.tenant_id == "acme"
        assert view.to_json()["tenant_id"] == "acme"
        out = io.StringIO()
        Console(file=out, width=200, color_system=None).print(
            timeline(view, rt.history(child.run_id))
        )
        assert "tenant acme" in out.getvalue()
        [invoke_step] = [s for s in rt.history(parent_id) if s.kind == "invoke"]
        assert "(tenant acme)" in invoke_step.detail


def test_without_a_payload_serdes_data_must_still_be_an_object():
    app = App("t")
    app.workflow("child")(lambda ctx: None)

    @app.workflow("parent", trigger="go")
    def parent(ctx: Context) -> str:
        ctx.step.invoke("x", workflow="child", data=[1, 2])
        return "?"

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        error = rt.run(run_id).error
        assert error.type == "WorkflowDefinitionError"
        assert "payload_serdes" in error.message


def test_a_failing_child_still_raises_step_error_with_serdes_given():
    app = App("t")

    @app.workflow("child")
    def child(ctx: Context) -> None:
        raise ValueError("no price")

    @app.workflow("parent", trigger="go")
    def parent(ctx: Context) -> str:
        try:
            ctx.step.invoke("x", workflow="child", result_serdes=Tagged(), tenant_id="t1")
        except StepError as error:
            return error.error_type
        return "?"

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        assert rt.run(run_id).output == "ValueError"


def test_duplicate_deliveries_start_one_child_with_its_tenant():
    with LocalRuntime(invoking_app(tenant_id="acme"), start=START, deliveries_per_message=2) as rt:
        [parent_id] = rt.send(Event(name="go"))
        rt.advance(timedelta(minutes=2))
        assert rt.run(parent_id).output == {"total": 7}
        [child] = rt.runs(workflow="child")
        assert rt.run(child.run_id).tenant_id == "acme"


def test_a_crash_after_the_child_is_started_starts_no_second_child():
    # GIVEN a crash right after the invoke's record (and its child run) is written
    crash = crash_once(lambda name, args, kwargs: name == "put_step" and args[1].kind == "invoke")
    app = invoking_app(tenant_id="acme")
    with LocalRuntime(app, start=START, ports_hook=wrap_store(after=crash)) as rt:
        # WHEN the message comes back after the crash
        [parent_id] = rt.send(Event(name="go"))
        rt.advance(timedelta(minutes=2))
        # THEN one child ran, with its tenant, and the parent got its result
        assert crash.state["fired"]
        assert rt.run(parent_id).output == {"total": 7}
        [child] = rt.runs(workflow="child")
        assert rt.run(child.run_id).tenant_id == "acme"


def test_a_child_past_the_invoke_timeout_raises_step_error_with_options_given():
    app = App("t")

    @app.workflow("slow-child")
    def slow_child(ctx: Context) -> str:
        ctx.step.sleep("long", "2h")
        return Tagged().serialize("late")

    @app.workflow("parent", trigger="go")
    def parent(ctx: Context) -> Any:
        try:
            return ctx.step.invoke(
                "wait",
                workflow="slow-child",
                data=None,
                timeout="1h",
                payload_serdes=Tagged(),
                result_serdes=Tagged(),
                tenant_id="acme",
            )
        except StepError as error:
            return error.error_type

    with LocalRuntime(app, start=START) as rt:
        [parent_id] = rt.send(Event(name="go"))
        rt.advance(timedelta(hours=1, minutes=1))
        assert rt.run(parent_id).output == "InvokeTimeoutError"


def test_an_async_workflow_invokes_with_serdes_and_a_tenant():
    app = invoking_app()

    @app.workflow("async-parent", trigger="go-async")
    async def parent(ctx: AsyncContext) -> Any:
        return await ctx.step.invoke(
            "price",
            workflow="child",
            data={"lines": [1, 2]},
            payload_serdes=Tagged(),
            result_serdes=Tagged(),
            tenant_id="globex",
        )

    with LocalRuntime(app, start=START) as rt:
        [parent_id] = rt.send(Event(name="go-async"))
        assert rt.run(parent_id).output == {"total": 3}
        [child] = rt.runs(workflow="child")
        assert rt.run(child.run_id).tenant_id == "globex"
