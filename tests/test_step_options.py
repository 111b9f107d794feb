"""`step.run`'s options: `retries`, `at_most_once`, `serdes`, `timeout`; sync and async.

Options are keyword arguments of the step call and never reach the function. Time is
virtual: a step "runs long" by moving the runtime's clock on from inside itself (the
timeout watches the Clock port), then blocking until the test lets it go.
"""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import timedelta
from typing import Any

import pytest

from infra.local import LocalRuntime
from sdk import App, AsyncContext, Context, Event, Retry, StepError, WorkflowDefinitionError
from tests.conftest import START
from tests.faults import SimulatedCrash


class Shouting:
    """A serdes: values as upper-case JSON text (so a test can see it was used)."""

    def serialize(self, value: Any) -> str:
        return json.dumps(value).upper()

    def deserialize(self, text: str) -> Any:
        return json.loads(text.lower())


def test_options_are_not_passed_to_the_function_and_a_plain_call_still_takes_kwargs(effects):
    app = App("t")

    def greet(name: str, *, punctuation: str = ".") -> str:
        effects.record("greet", name, punctuation)
        return f"hi {name}{punctuation}"

    @app.workflow("w", trigger="go")
    def flow(ctx: Context) -> list[str]:
        return [
            ctx.step.run("plain", greet, "ada", punctuation="!"),
            ctx.step.run("opts", greet, "bob", punctuation="?", retries=Retry(max_attempts=2),
                         at_most_once=True, timeout="1m"),
        ]  # fmt: skip

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        assert rt.run(run_id).output == ["hi ada!", "hi bob?"]
        assert effects.log == [("greet", ("ada", "!")), ("greet", ("bob", "?"))]


def test_a_steps_own_retry_policy_replaces_the_workflows(effects):
    # GIVEN a workflow that retries 4 times, and a step that retries twice
    app = App("t")

    def flaky() -> str:
        effects.record("flaky")
        raise ValueError("down")

    @app.workflow("w", trigger="go", retries=Retry(max_attempts=4, initial_delay="1s"))
    def flow(ctx: Context) -> str:
        try:
            ctx.step.run(
                "once-more", flaky, retries=Retry(max_attempts=2, initial_delay="10s", jitter=0)
            )
        except StepError as error:
            return error.error_type
        return "?"

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        # WHEN the step keeps failing THEN it is tried twice, 10 s apart, and fails
        rt.advance(timedelta(seconds=9))
        assert effects["flaky"] == 1
        rt.advance(timedelta(seconds=2))
        assert rt.run(run_id).output == "ValueError"
        assert effects["flaky"] == 2
        [step] = rt.history(run_id)
        assert (step.status, step.attempts) == ("FAILED", 2)


def test_a_serdes_stores_the_text_and_the_workflow_gets_the_value_on_every_replay(effects):
    app = App("t")

    @app.workflow("w", trigger="go")
    def flow(ctx: Context) -> dict:
        card = ctx.step.run("card", lambda: {"last4": "4242"}, serdes=Shouting())
        ctx.step.sleep("nap", "1m")
        effects.record("after-nap", card)
        return card

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        rt.advance(timedelta(minutes=2))
        # THEN the record holds the serdes's text, and the replay got the value back
        assert rt.history(run_id)[0].output == '{"LAST4": "4242"}'
        assert rt.run(run_id).output == {"last4": "4242"}
        assert effects.log == [("after-nap", ({"last4": "4242"},))]


def test_a_serdes_that_returns_no_text_fails_the_step_clearly():
    app = App("t")

    class NotText:
        def serialize(self, value: Any) -> Any:
            return b"bytes"

        def deserialize(self, text: str) -> Any:
            return text

    @app.workflow("w", trigger="go")
    def flow(ctx: Context) -> str:
        try:
            ctx.step.run("x", lambda: 1, serdes=NotText())
        except StepError as error:
            return error.error_message
        return "?"

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        assert "serialize returned a bytes" in rt.run(run_id).output


@pytest.mark.parametrize(
    "options, message",
    [
        ({"retries": 3}, "retries must be a Retry"),
        ({"timeout": "0s"}, "timeout must be longer than zero"),
        ({"serdes": object()}, "is not a serdes"),
        ({"at_most_once": "yes"}, "at_most_once must be True or False"),
    ],
)
def test_bad_options_are_a_definition_error(options, message):
    app = App("t")

    @app.workflow("w", trigger="go")
    def flow(ctx: Context) -> str:
        ctx.step.run("x", lambda: 1, **options)
        return "ran"

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        run = rt.run(run_id)
        assert run.status == "FAILED"
        assert run.error.type == WorkflowDefinitionError.__name__
        assert message in run.error.message


# -- at most once ------------------------------------------------------------------------


def crashing_app(effects, *, at_most_once: bool, attempts: int) -> App:
    app = App("t")

    def charge() -> str:
        effects.record("charge")
        if effects["charge"] == 1:
            raise SimulatedCrash("the process dies while the charge is in flight")
        return "charged"

    @app.workflow("pay", trigger="go", retries=Retry(max_attempts=attempts, initial_delay="1s"))
    def flow(ctx: Context) -> str:
        try:
            return ctx.step.run("charge", charge, at_most_once=at_most_once)
        except StepError as error:
            return f"failed: {error.error_type}"

    return app


def test_an_at_most_once_attempt_cut_off_by_a_crash_is_not_run_again_but_fails(effects):
    # GIVEN an at-most-once step with one attempt, whose first run crashes the process
    with LocalRuntime(crashing_app(effects, at_most_once=True, attempts=1), start=START) as rt:
        # WHEN the message comes back after the crash
        [run_id] = rt.send(Event(name="go"))
        # THEN the function ran once, and the step failed instead of running again
        assert effects["charge"] == 1
        assert rt.crashed_batches == 1
        assert rt.run(run_id).output == "failed: AttemptInterruptedError"
        [step] = rt.history(run_id)
        assert (step.status, step.attempts) == ("FAILED", 1)
        assert "never recorded" in step.error.message


def test_an_interrupted_at_most_once_attempt_counts_as_a_failure_the_policy_may_retry(effects):
    with LocalRuntime(crashing_app(effects, at_most_once=True, attempts=2), start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        rt.advance(timedelta(seconds=5))
        # The interrupted attempt 1 was not re-run; attempt 2 ran once, after the backoff
        assert effects["charge"] == 2
        assert rt.run(run_id).output == "charged"
        [step] = rt.history(run_id)
        assert step.attempts == 2
        assert [f.error.type for f in step.failures] == ["AttemptInterruptedError"]


def test_without_at_most_once_a_crashed_attempt_runs_again(effects):
    with LocalRuntime(crashing_app(effects, at_most_once=False, attempts=1), start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        assert effects["charge"] == 2
        assert rt.run(run_id).output == "charged"


def test_duplicate_deliveries_run_a_step_with_options_once(effects):
    app = App("t")

    @app.workflow("w", trigger="go")
    def flow(ctx: Context) -> Any:
        value = ctx.step.run(
            "charge",
            lambda: effects.record("charge") or {"paid": 7},
            at_most_once=True,
            serdes=Shouting(),
            timeout="1m",
            retries=Retry(max_attempts=3),
        )
        ctx.step.sleep("nap", "1m")
        return value

    with LocalRuntime(app, start=START, deliveries_per_message=2) as rt:
        [run_id] = rt.send(Event(name="go"))
        rt.advance(timedelta(minutes=2))
        assert rt.run(run_id).output == {"paid": 7}
        assert effects["charge"] == 1
        [step, _] = rt.history(run_id)
        assert (step.status, step.attempts) == ("COMPLETED", 1)


def test_an_at_most_once_step_costs_one_more_write_per_attempt(requests_of):
    def run_with(at_most_once: bool) -> int:
        app = App("t")
        app.workflow("w", trigger="go")(
            lambda ctx: ctx.step.run("x", lambda: 1, at_most_once=at_most_once)
        )
        with LocalRuntime(app, start=START) as rt:
            counter = requests_of(rt)
            rt.send(Event(name="go"))
            return counter.dynamodb_writes

    assert run_with(True) - run_with(False) == 1


# -- timeout ----------------------------------------------------------------------------


def slow_app(rt_box: dict, release: threading.Event, effects, *, attempts: int = 1) -> App:
    app = App("t")

    def slow() -> str:
        effects.record("slow")
        if effects["slow"] == 1:
            rt_box["rt"].clock.advance(timedelta(seconds=31))  # it runs long...
            release.wait(30)  # ...and is still running when its 30 s are up
            effects.record("late-return")
            return "late"
        return "quick"

    @app.workflow("w", trigger="go", retries=Retry(max_attempts=attempts, initial_delay="1s"))
    def flow(ctx: Context) -> str:
        try:
            return ctx.step.run("slow", slow, timeout="30s")
        except StepError as error:
            return f"{error.error_type}: {error.error_message}"

    return app


def test_an_attempt_past_its_timeout_fails_and_what_it_returns_later_is_discarded(effects):
    box: dict[str, LocalRuntime] = {}
    release = threading.Event()
    try:
        with LocalRuntime(slow_app(box, release, effects), start=START) as rt:
            box["rt"] = rt
            # WHEN the step's attempt runs past its 30 s timeout
            [run_id] = rt.send(Event(name="go"))
            # THEN the attempt failed with StepTimeoutError, which the workflow caught
            output = rt.run(run_id).output
            assert output.startswith("StepTimeoutError: step 'slow' attempt 1 did not finish")
            assert "timeout of 30s" in output
            # AND the abandoned function's late result changes nothing
            release.set()
            assert wait_until(lambda: effects["late-return"] == 1)
            rt.advance(timedelta(minutes=1))
            [step] = rt.history(run_id)
            assert (step.status, step.output) == ("FAILED", None)
    finally:
        release.set()


def test_a_timed_out_attempt_is_retried_by_the_policy(effects):
    box: dict[str, LocalRuntime] = {}
    release = threading.Event()
    try:
        with LocalRuntime(slow_app(box, release, effects, attempts=2), start=START) as rt:
            box["rt"] = rt
            [run_id] = rt.send(Event(name="go"))
            rt.advance(timedelta(seconds=5))
            assert rt.run(run_id).output == "quick"
            [step] = rt.history(run_id)
            assert [f.error.type for f in step.failures] == ["StepTimeoutError"]
    finally:
        release.set()


def test_an_async_step_past_its_timeout_is_cancelled(effects):
    app = App("t")
    box: dict[str, LocalRuntime] = {}

    async def slow() -> str:
        effects.record("started")
        box["rt"].clock.advance(timedelta(seconds=11))
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            effects.record("cancelled")
            raise
        return "never"

    @app.workflow("w", trigger="go", retries=Retry(max_attempts=1))
    async def flow(ctx: AsyncContext) -> str:
        try:
            return await ctx.step.run("slow", slow, timeout="10s")
        except StepError as error:
            return error.error_type

    with LocalRuntime(app, start=START) as rt:
        box["rt"] = rt
        [run_id] = rt.send(Event(name="go"))
        assert rt.run(run_id).output == "StepTimeoutError"
        assert effects["cancelled"] == 1


def test_a_step_within_its_timeout_returns_its_value_in_sync_and_async_workflows():
    app = App("t")

    async def fetch() -> int:
        await asyncio.sleep(0)
        return 2

    @app.workflow("sync", trigger="go")
    def sync_flow(ctx: Context) -> list[int]:
        return [ctx.step.run("a", lambda: 1, timeout="5s"), ctx.step.run("b", fetch, timeout="5s")]

    @app.workflow("async", trigger="go")
    async def async_flow(ctx: AsyncContext) -> list[int]:
        return [
            await ctx.step.run("a", lambda: 1, timeout="5s"),
            await ctx.step.run("b", fetch, timeout="5s"),
        ]

    with LocalRuntime(app, start=START) as rt:
        for run_id in rt.send(Event(name="go")):
            assert rt.run(run_id).output == [1, 2]


def wait_until(condition, seconds: float = 10) -> bool:
    """Wait (in real time) for a condition another thread makes true."""
    done = threading.Event()
    for _ in range(int(seconds / 0.01)):
        if condition():
            return True
        done.wait(0.01)
    return condition()


def test_an_attempt_is_held_to_the_time_left_in_its_lambda_invocation(effects):
    # GIVEN Lambda invocations of 1 minute and a step whose timeout is 10 minutes
    app = App("t")
    box: dict[str, LocalRuntime] = {}
    release = threading.Event()

    def long() -> str:
        effects.record("long")
        box["rt"].clock.advance(timedelta(minutes=2))  # it runs past the invocation's end
        release.wait(30)
        return "late"

    @app.workflow("w", trigger="go")
    def flow(ctx: Context) -> str:
        ctx.step.run("first", lambda: effects.record("first"))
        try:
            return ctx.step.run("long", long, timeout="10m", retries=Retry(max_attempts=1))
        except StepError as error:
            return f"{error.error_type}: {error.error_message}"

    try:
        with LocalRuntime(
            app,
            start=START,
            lambda_timeout=timedelta(minutes=1),
            settings={"suspend_margin": timedelta(seconds=10)},
        ) as rt:
            box["rt"] = rt
            [run_id] = rt.send(Event(name="go"))
            # THEN the step did not start in the invocation that had run "first" already,
            # but in a fresh one, and there it failed when the invocation's time ran low
            output = rt.run(run_id).output
            assert output.startswith("StepTimeoutError: step 'long' attempt 1 did not finish")
            assert "the 50s left of its invocation (its timeout is 600s" in output
            assert effects["first"] == 1 and effects["long"] == 1
            assert rt.deliveries["work"] >= 2
    finally:
        release.set()
