"""Replay: recorded steps never run again; ids are stable; code changes are detected."""

from __future__ import annotations

from datetime import timedelta

from infra.local import LocalRuntime
from sdk import App, CancelOn, Context, Event
from tests.conftest import START


def test_replay_returns_recorded_results_without_running_step_code_again(effects):
    app = App("t")

    @app.workflow("three-sleeps", trigger="go")
    def flow(ctx: Context) -> list[int]:
        values = []
        for index in range(3):
            values.append(
                ctx.step.run(f"compute-{index}", lambda i=index: effects.record(f"c{i}") or i * 10)
            )
            ctx.step.sleep(f"nap-{index}", "1h")
        return values

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        rt.advance(timedelta(hours=4))
        run = rt.run(run_id)
        assert run.status == "COMPLETED"
        assert run.output == [0, 10, 20]
        # Three resumes replayed the earlier steps; none of their code ran twice.
        assert effects.calls == {"c0": 1, "c1": 1, "c2": 1}
        assert rt.deliveries["work"] >= 4


def test_a_loop_reusing_one_step_id_gets_distinct_stable_ids(effects):
    app = App("t")

    @app.workflow("loop", trigger="go")
    def flow(ctx: Context) -> int:
        total = 0
        for _ in range(3):
            total += ctx.step.run("attempt-charge", lambda: effects.record("charge") or 1)
            ctx.step.sleep("pause", "10m")
        return total

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        rt.advance(timedelta(hours=1))
        assert rt.run(run_id).output == 3
        assert effects["charge"] == 3
        ids = [step.id for step in rt.history(run_id)]
        assert ids == [
            "attempt-charge",
            "pause",
            "attempt-charge#2",
            "pause#2",
            "attempt-charge#3",
            "pause#3",
        ]


def test_step_results_are_their_json_form_on_first_run_and_on_replay():
    app = App("t")
    seen = []

    @app.workflow("json", trigger="go")
    def flow(ctx: Context) -> None:
        value = ctx.step.run("tuple", lambda: (1, {2: "two"}))
        seen.append(value)
        ctx.step.sleep("nap", "1s")

    with LocalRuntime(app, start=START) as rt:
        rt.send(Event(name="go"))
        rt.advance(timedelta(seconds=2))
    # Before and after the sleep the workflow saw the same value: the JSON form.
    assert seen == [[1, {"2": "two"}], [1, {"2": "two"}]]


def test_changing_a_step_id_between_suspension_and_resume_fails_the_run_naming_both(effects):
    app = App("t")
    deployed = {"name": "send-reminder"}

    @app.workflow("drifting", trigger="go")
    def flow(ctx: Context) -> str:
        ctx.step.run("first", lambda: "ok")
        ctx.step.sleep("wait", "1h")
        ctx.step.run(deployed["name"], lambda: effects.record("second"))
        ctx.step.sleep("wait-again", "1h")
        return "done"

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        rt.advance(timedelta(hours=1, seconds=1))
        assert rt.run(run_id).status == "SLEEPING"
        # A deploy renames the step while the run sleeps.
        deployed["name"] = "send-nudge"
        rt.advance(timedelta(hours=1, seconds=1))
        run = rt.run(run_id)
        assert run.status == "FAILED"
        assert run.error.type == "NonDeterminismError"
        assert "'send-reminder'" in run.error.message
        assert "'send-nudge'" in run.error.message
        assert "deterministic" in run.error.message
        assert effects["second"] == 1


def test_user_code_that_catches_everything_cannot_swallow_a_suspension(effects):
    app = App("t")

    @app.workflow("greedy", trigger="go")
    def flow(ctx: Context) -> str:
        try:
            ctx.step.sleep("nap", "1h")
        except BaseException:  # exactly what a careless workflow does
            effects.record("swallowed")
        ctx.step.run("after", lambda: effects.record("after"))
        return "done"

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        assert rt.run(run_id).status == "SLEEPING"
        assert effects["after"] == 0
        rt.advance(timedelta(hours=2))
        assert rt.run(run_id).status == "COMPLETED"
        # The next step call re-raised the suspension, so "after" ran only after the nap.
        assert effects["after"] == 1


def test_context_exposes_event_run_id_and_workflow_id():
    app = App("t")
    seen = {}

    @app.workflow("ctx", trigger="go")
    def flow(ctx: Context) -> None:
        seen.update(
            run=ctx.run_id, workflow=ctx.workflow_id, data=ctx.event.data, name=ctx.event.name
        )

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go", data={"k": 1}))
    assert seen == {"run": run_id, "workflow": "ctx", "data": {"k": 1}, "name": "go"}


def test_replay_from_a_late_step_keeps_the_passed_sleep_and_the_steps_before(effects):
    # GIVEN a finished run a, sleep 2h, b, c
    app = App("t")

    @app.workflow("abc", trigger="go")
    def flow(ctx: Context) -> str:
        ctx.step.run("a", lambda: effects.record("a"))
        ctx.step.sleep("nap", "2h")
        ctx.step.run("b", lambda: effects.record("b"))
        ctx.step.run("c", lambda: effects.record("c"))
        return "done"

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        rt.advance(timedelta(hours=3))
        assert rt.run(run_id).status == "COMPLETED"
        # WHEN it is replayed from c
        replay_id = rt.replay(run_id, from_step="c")
        # THEN only c runs again: a, the sleep and b are kept, and it does not sleep again
        assert rt.run(replay_id).status == "COMPLETED"
        assert effects.calls == {"a": 1, "b": 1, "c": 2}
        kept = [(s.id, s.status) for s in rt.history(replay_id)]
        assert kept == [
            ("a", "COMPLETED"),
            ("nap", "COMPLETED"),
            ("b", "COMPLETED"),
            ("c", "COMPLETED"),
        ]


def test_replay_from_a_wait_does_not_take_an_event_from_before_the_replay():
    # GIVEN a run whose wait was resolved by an event
    app = App("t")

    @app.workflow("approval", trigger="order/placed")
    def flow(ctx: Context) -> str:
        got = ctx.step.wait_for_event(
            "approved", event="order/approved", match="data.id", timeout="1d"
        )
        return "approved" if got else "timed out"

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="order/placed", data={"id": 7}))
        rt.send(Event(name="order/approved", data={"id": 7}))
        assert rt.run(run_id).output == "approved"
        rt.advance(timedelta(minutes=10))
        # WHEN it is replayed from the wait
        replay_id = rt.replay(run_id, from_step="approved")
        # THEN the new wait waits for a new event (the old one came before the replay)
        assert rt.run(replay_id).status == "WAITING"
        rt.send(Event(name="order/approved", data={"id": 7}))
        assert rt.run(replay_id).output == "approved"


def test_a_replay_of_a_run_cancelled_by_an_event_is_not_cancelled_by_that_old_event():
    app = App("t")

    @app.workflow(
        "drip",
        trigger="user/signup",
        cancel_on=[CancelOn("user/deleted", match="data.userId")],
    )
    def flow(ctx: Context) -> str:
        ctx.step.sleep("nap", "1h")
        return "sent"

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="user/signup", data={"userId": "u1"}))
        rt.send(Event(name="user/deleted", data={"userId": "u1"}))
        assert rt.run(run_id).status == "CANCELLED"
        rt.advance(timedelta(minutes=10))
        replay_id = rt.replay(run_id)
        assert rt.run(replay_id).status == "SLEEPING"
        rt.advance(timedelta(hours=2))
        assert rt.run(replay_id).output == "sent"
