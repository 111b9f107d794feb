"""Bad input produces a clear error on the run or in the log: never a silent drop or a
crash loop."""

from __future__ import annotations

import logging

import pytest

from engine.model import WorkMessage
from infra.local import LocalRuntime
from sdk import App, Context, Event, WorkflowDefinitionError
from tests.conftest import START


class Opaque:
    pass


def run_one(flow_body, caplog=None):
    app = App("t")
    app.workflow("bad", trigger="go")(flow_body)
    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        return rt.run(run_id), rt.history(run_id)


def test_a_step_output_that_is_not_json_fails_the_step_naming_it():
    run, [step] = run_one(lambda ctx: ctx.step.run("make-object", Opaque))
    assert run.status == "FAILED"
    assert step.status == "FAILED" and step.attempts == 1
    assert step.error.type == "OutputNotSerializableError"
    assert "step 'make-object' returned a Opaque" in step.error.message
    assert "not JSON-serialisable" in run.error.message


def test_a_step_output_over_the_size_budget_fails_naming_step_size_and_limit():
    run, [step] = run_one(lambda ctx: ctx.step.run("big", lambda: "x" * 400_000))
    assert run.status == "FAILED"
    assert step.error.type == "OutputTooLargeError"
    assert "step 'big' returned 400,002 bytes" in step.error.message
    assert "350,000" in step.error.message


def test_a_run_output_over_the_size_budget_fails_the_run():
    run, _ = run_one(lambda ctx: "y" * 360_000)
    assert run.status == "FAILED"
    assert run.error.type == "OutputTooLargeError"
    assert "the workflow returned 360,002 bytes" in run.error.message


def test_a_malformed_duration_fails_the_run_with_advice():
    run, steps = run_one(lambda ctx: ctx.step.sleep("nap", "2 fortnights"))
    assert run.status == "FAILED"
    assert run.error.type == "WorkflowDefinitionError"
    assert "invalid step.sleep 'nap' duration '2 fortnights'" in run.error.message
    assert "'24h'" in run.error.message
    assert steps == []


def test_a_run_of_a_workflow_the_app_no_longer_defines_fails_clearly():
    old_app, new_app = App("t"), App("t")
    ghost = old_app.workflow("ghost", trigger="go")(lambda ctx: None)
    new_app.workflow("other", trigger="go")(lambda ctx: None)
    with LocalRuntime(new_app, start=START) as rt:
        run_id = rt.services.lifecycle.start_run(ghost, Event(name="go", id="e1"))
        rt.drain()
        run = rt.run(run_id)
        assert run.status == "FAILED"
        assert run.error.type == "UnknownWorkflowError"
        assert "'ghost'" in run.error.message and "Deploy code that defines it" in run.error.message


def test_a_message_for_a_missing_run_is_logged_and_dropped_not_retried(caplog):
    app = App("t")
    app.workflow("w", trigger="go")(lambda ctx: None)
    with LocalRuntime(app, start=START) as rt, caplog.at_level(logging.ERROR, "stepline"):
        rt.services.ports.queue.enqueue(WorkMessage(run_id="deleted-run", reason="timer"))
        rt.drain()
        assert rt.deliveries["work"] == 1
        assert rt.dead_letters("work") == []
        assert "names run deleted-run, which does not exist" in caplog.text


def test_a_malformed_work_message_goes_to_the_dead_letter_queue_without_blocking_others(caplog):
    app = App("t")
    app.workflow("w", trigger="go")(lambda ctx: "fine")
    with LocalRuntime(app, start=START) as rt, caplog.at_level(logging.ERROR, "stepline"):
        rt.clients.sqs.send_message(QueueUrl=rt.queue_urls["work"], MessageBody="{not json")
        [run_id] = rt.send(Event(name="go"))
        assert rt.run(run_id).status == "COMPLETED"
        rt.drain()
        assert rt.dead_letters("work") == ["{not json"]
        assert "malformed" in caplog.text


@pytest.mark.parametrize(
    "define, message",
    [
        (lambda app: app.workflow("a b"), "workflow id 'a b'"),
        (lambda app: app.workflow("x", retries="3"), "retries must be a Retry"),
        (lambda app: app.workflow("x")(lambda: None), "exactly one argument"),
    ],
)
def test_bad_workflow_definitions_fail_at_import_time(define, message):
    with pytest.raises(WorkflowDefinitionError, match=message):
        define(App("t"))


def test_a_workflow_id_registered_twice_is_refused():
    app = App("t")
    app.workflow("dup")(lambda ctx: None)
    with pytest.raises(WorkflowDefinitionError, match="registered twice"):
        app.workflow("dup")(lambda ctx: None)


def test_nested_steps_are_refused_with_advice():
    def flow(ctx: Context) -> None:
        ctx.step.run("outer", lambda: ctx.step.run("inner", lambda: 1))

    run, [step] = run_one(flow)
    assert run.status == "FAILED"
    assert step.attempts == 1
    assert "steps cannot be nested" in step.error.message
