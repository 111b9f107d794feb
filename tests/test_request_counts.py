"""What each step costs in AWS requests, counted with botocore event hooks."""

from __future__ import annotations

from datetime import timedelta

from infra.local import LocalRuntime
from sdk import App, Context, Event
from tests.conftest import START


def inline_app(steps: int) -> App:
    app = App("t")

    @app.workflow("inline", trigger="go")
    def flow(ctx: Context) -> int:
        for index in range(steps):
            ctx.step.run(f"step-{index}", lambda i=index: i)
        return steps

    return app


def requests_for_inline_run(steps: int, requests_of):
    with LocalRuntime(inline_app(steps), start=START) as rt:
        counter = requests_of(rt)
        [run_id] = rt.send(Event(name="go"))
        counter.enabled = False
        assert rt.run(run_id).status == "COMPLETED"
        return counter


def test_each_inline_step_costs_exactly_one_dynamodb_write_and_no_sqs(requests_of):
    small = requests_for_inline_run(5, requests_of)
    large = requests_for_inline_run(25, requests_of)
    # 20 more steps cost exactly 20 more writes: one conditional put each.
    assert large.dynamodb_writes - small.dynamodb_writes == 20
    assert large.dynamodb_reads == small.dynamodb_reads
    # No SQS message between steps: the only send is the run's start message.
    assert large.sqs_sends == small.sqs_sends == 1
    assert large.total("scheduler") == 0


def test_a_resume_loads_the_history_with_one_query(requests_of, effects):
    app = App("t")

    @app.workflow("resume", trigger="go")
    def flow(ctx: Context) -> str:
        for index in range(30):
            ctx.step.run(f"before-{index}", lambda: "x")
        ctx.step.sleep("nap", "5m")
        ctx.step.run("after", lambda: effects.record("after"))
        return "done"

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        counter = requests_of(rt)
        rt.advance(timedelta(minutes=5, seconds=1))
        counter.enabled = False
        assert rt.run(run_id).status == "COMPLETED"
        # One Query reads the run, its event and all 31 recorded steps.
        assert counter.counts[("dynamodb", "Query")] == 1
        assert counter.dynamodb_reads == 1
        # Claim, record "after", complete the run. The sleep's end is not written: its
        # record already holds the wake time.
        assert counter.dynamodb_writes == 3
        # The timer that woke it was sent before we started counting; nothing else.
        assert counter.sqs_sends == 0


def test_sleeps_use_sqs_delays_up_to_15_minutes_and_scheduler_beyond(requests_of):
    app = App("t")

    @app.workflow("naps", trigger="go")
    def flow(ctx: Context) -> None:
        ctx.step.sleep("short", "15m")
        ctx.step.sleep("long", "16m")

    with LocalRuntime(app, start=START) as rt:
        counter = requests_of(rt)
        [run_id] = rt.send(Event(name="go"))
        assert counter.total("scheduler", {"CreateSchedule"}) == 0
        assert rt.pending_schedules() == []
        rt.advance(timedelta(minutes=15, seconds=1))
        assert counter.total("scheduler", {"CreateSchedule"}) == 1
        assert len(rt.pending_schedules()) == 1
        rt.advance(timedelta(minutes=16, seconds=1))
        assert rt.run(run_id).status == "COMPLETED"
        assert rt.pending_schedules() == []


def test_a_sleep_is_written_once_and_the_audit_trail_still_shows_when_it_ended(requests_of):
    app = App("t")

    @app.workflow("naps", trigger="go")
    def flow(ctx: Context) -> str:
        ctx.step.sleep("first", "5m")
        ctx.step.sleep("second", "1h")
        return "done"

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        [first] = rt.history(run_id)
        assert (first.status, first.ended_at) == ("SLEEPING", None)
        counter = requests_of(rt)
        rt.advance(timedelta(minutes=5, seconds=1))
        # Claim, record the second sleep, suspend: nothing rewrites the first sleep.
        assert counter.total("dynamodb", {"PutItem"}) == 3
        first, second = rt.history(run_id)
        assert (first.status, first.ended_at) == ("COMPLETED", START + timedelta(minutes=5))
        assert second.status == "SLEEPING"
        rt.cancel(run_id)
        first, second = rt.history(run_id)
        assert (first.status, second.status) == ("COMPLETED", "CANCELLED")
