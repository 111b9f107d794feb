"""Timers that fire early, twice, or for a wake-up that no longer applies."""

from __future__ import annotations

from datetime import timedelta

from engine.model import WorkMessage
from infra.local import LocalRuntime
from sdk import App, Context, Event
from tests.conftest import START
from tests.reliability.figures import add


def sleepy_app(effects) -> App:
    app = App("timers")

    @app.workflow("sleepy", trigger="go")
    def sleepy(ctx: Context) -> str:
        ctx.step.sleep("first", "2h")
        ctx.step.run("between", lambda: effects.record("between"))
        ctx.step.sleep("second", "3h")
        ctx.step.run("after", lambda: effects.record("after"))
        return "done"

    return app


def test_an_early_timer_sleeps_again_for_the_rest_and_a_stale_one_is_ignored(effects):
    with LocalRuntime(sleepy_app(effects), start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        wake_at = rt.run(run_id).wake_at
        queue = rt.services.ports.queue
        # Scheduler (or a skewed clock) delivers the wake-up an hour early, twice.
        for _ in range(2):
            queue.enqueue(WorkMessage(run_id=run_id, reason="timer", at=wake_at))
        rt.drain()
        add("messages delivered more than once", 2)
        assert rt.run(run_id).status == "SLEEPING"
        assert effects["between"] == 0
        rt.advance(timedelta(hours=2, seconds=1))
        assert effects["between"] == 1
        # The first sleep's timer arrives again after the run moved on: nothing happens.
        queue.enqueue(WorkMessage(run_id=run_id, reason="timer", at=wake_at))
        rt.drain()
        assert rt.run(run_id).status == "SLEEPING"
        assert effects.calls == {"between": 1}
        rt.advance(timedelta(hours=3, seconds=1))
        assert rt.run(run_id).status == "COMPLETED"
        assert effects.calls == {"between": 1, "after": 1}
        first = rt.history(run_id)[0]
        assert first.ended_at - first.started_at >= timedelta(hours=2)
