"""Per-step retries: attempts, backoff timers, NonRetriableError, RetryAfterError,
catchable StepError, and on_failure."""

from __future__ import annotations

from datetime import timedelta

from infra.local import LocalRuntime
from sdk import App, Context, Event, NonRetriableError, Retry, RetryAfterError, StepError
from tests.conftest import START


class Flaky:
    """Fails the first `failures` calls, then returns "ok"."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures = failures
        self.calls = 0
        self.error = error or ConnectionError("upstream unavailable")

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "ok"


def test_a_flaky_step_is_retried_with_exponential_backoff_within_jitter_bounds():
    app = App("t")
    flaky = Flaky(failures=2)
    attempts_seen = []

    @app.workflow(
        "flaky",
        trigger="go",
        retries=Retry(max_attempts=3, initial_delay="10s", factor=2.0, jitter=0.2),
    )
    def flow(ctx: Context) -> str:
        return ctx.step.run("call-api", lambda: attempts_seen.append(ctx.attempt) or flaky())

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        [step] = rt.history(run_id)
        assert step.status == "RETRYING" and step.attempts == 1
        assert rt.run(run_id).status == "SLEEPING"
        first_delay = (step.wake_at - step.failures[0].ended_at).total_seconds()
        assert 8 <= first_delay <= 12

        rt.advance(timedelta(seconds=13))
        [step] = rt.history(run_id)
        assert step.status == "RETRYING" and step.attempts == 2
        second_delay = (step.wake_at - step.failures[1].ended_at).total_seconds()
        assert 16 <= second_delay <= 24

        rt.advance(timedelta(seconds=25))
        run = rt.run(run_id)
        assert run.status == "COMPLETED" and run.output == "ok"
        [step] = rt.history(run_id)
        assert step.attempts == 3
        assert [failure.error.type for failure in step.failures] == ["ConnectionError"] * 2
        assert flaky.calls == 3
        assert attempts_seen == [0, 1, 2]


def test_exhausted_attempts_raise_a_catchable_step_error_with_the_original_error():
    app = App("t")

    @app.workflow("give-up", trigger="go", retries=Retry(max_attempts=2, initial_delay="1s"))
    def flow(ctx: Context) -> dict:
        try:
            ctx.step.run("charge", Flaky(failures=5, error=ValueError("card declined")))
        except StepError as error:
            ctx.step.run("notify", lambda: "told the user")
            return {
                "failed_step": error.step_id,
                "type": error.error_type,
                "message": error.error_message,
            }
        return {}

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        rt.advance(timedelta(seconds=5))
        run = rt.run(run_id)
        assert run.status == "COMPLETED"
        assert run.output == {
            "failed_step": "charge",
            "type": "ValueError",
            "message": "card declined",
        }
        charge, notify = rt.history(run_id)
        assert charge.status == "FAILED" and charge.attempts == 2
        assert notify.status == "COMPLETED"


def test_non_retriable_error_fails_the_step_at_once():
    app = App("t")
    flaky = Flaky(failures=5, error=NonRetriableError("account closed"))

    @app.workflow("closed", trigger="go", retries=Retry(max_attempts=5))
    def flow(ctx: Context) -> str:
        return ctx.step.run("charge", flaky)

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        run = rt.run(run_id)
        assert run.status == "FAILED"
        assert flaky.calls == 1
        assert run.error.type == "StepError"
        assert "NonRetriableError: account closed" in run.error.message
        [step] = rt.history(run_id)
        assert step.status == "FAILED" and step.attempts == 1


def test_retry_after_error_sets_the_next_delay():
    app = App("t")
    flaky = Flaky(failures=1, error=RetryAfterError("rate limited", "90s"))

    @app.workflow("polite", trigger="go", retries=Retry(max_attempts=3, initial_delay="1s"))
    def flow(ctx: Context) -> str:
        return ctx.step.run("call", flaky)

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        [step] = rt.history(run_id)
        assert step.wake_at - step.failures[0].ended_at == timedelta(seconds=90)
        rt.advance(timedelta(seconds=89))
        assert flaky.calls == 1
        rt.advance(timedelta(seconds=2))
        assert flaky.calls == 2
        assert rt.run(run_id).status == "COMPLETED"


def test_an_uncaught_failure_fails_the_run_and_calls_on_failure_once(effects):
    app = App("t")
    received = []

    def on_failure(ctx: Context) -> None:
        effects.record("on_failure")
        received.append(ctx.event)
        ctx.step.run("page-oncall", lambda: effects.record("paged"))

    @app.workflow(
        "doomed",
        trigger="go",
        retries=Retry(max_attempts=2, initial_delay="1s"),
        on_failure=on_failure,
    )
    def flow(ctx: Context) -> None:
        ctx.step.run("boom", Flaky(failures=9, error=KeyError("missing")))

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go", data={"order": 7}))
        rt.advance(timedelta(minutes=1))
        run = rt.run(run_id)
        assert run.status == "FAILED"
        assert "KeyError" in run.error.message
        assert effects.calls == {"on_failure": 1, "paged": 1}
        [failure_event] = received
        assert failure_event.name == "stepline/run.failed"
        assert failure_event.data["run_id"] == run_id
        assert failure_event.data["workflow_id"] == "doomed"
        assert failure_event.data["error"]["type"] == "StepError"
        assert failure_event.data["event"]["data"] == {"order": 7}
        handler_runs = rt.runs(workflow="doomed.on-failure")
        assert [r.status for r in handler_runs] == ["COMPLETED"]


def test_an_error_in_workflow_code_outside_steps_fails_the_run():
    app = App("t")

    @app.workflow("buggy", trigger="go")
    def flow(ctx: Context) -> None:
        ctx.step.run("fine", lambda: 1)
        raise RuntimeError("bug in the workflow")

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        run = rt.run(run_id)
        assert run.status == "FAILED"
        assert run.error.type == "RuntimeError"
        assert run.error.message == "bug in the workflow"
        assert "bug in the workflow" in run.error.traceback
