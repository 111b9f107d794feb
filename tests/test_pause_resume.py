"""Pause and resume (DESIGN.md, "Run control"), at the public API on moto.

A paused run starts no step later than a second after the pause; what arrives while it
is paused (a timer, an event for its wait, a child's result, a wait's timeout) is kept
and applied on resume; a paused workflow holds its new runs until it is resumed.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from engine.control import RunControl
from engine.model import Delivery, RunStatus, WorkMessage
from engine.runner import Runner
from engine.testing import FakeCluster
from infra.local import LocalRuntime
from sdk import App, Context, Event
from tests.conftest import START, SideEffects


def _napper(effects: SideEffects) -> App:
    app = App("t")

    @app.workflow("napper", trigger="go")
    def flow(ctx: Context) -> str:
        ctx.step.run("before", effects.record, "before")
        ctx.step.sleep("nap", "1h")
        ctx.step.run("after", effects.record, "after")
        return "done"

    return app


def test_a_paused_sleeping_run_stays_paused_past_its_wake_time_and_finishes_on_resume(effects):
    with LocalRuntime(_napper(effects), start=START) as rt:
        # GIVEN a run sleeping for an hour
        [run_id] = rt.send(Event(name="go"))
        assert rt.run(run_id).status == "SLEEPING"
        # WHEN it is paused and its wake time passes
        assert rt.pause(run_id) is True
        rt.advance(timedelta(hours=2))
        # THEN it stays paused, and the step after the sleep has not run
        assert rt.run(run_id).status == "PAUSED"
        assert effects["after"] == 0
        # AND pausing it again, or resuming a run that is not paused, does nothing
        assert rt.pause(run_id) is False
        # WHEN it is resumed
        assert rt.resume(run_id) is True
        # THEN the timer that fired while it was paused is applied: it finishes, once
        assert rt.run(run_id).status == "COMPLETED"
        assert (effects["before"], effects["after"]) == (1, 1)
        assert rt.resume(run_id) is False
        assert rt.pause(run_id) is False


def test_a_run_resumed_before_its_wake_time_sleeps_until_then(effects):
    with LocalRuntime(_napper(effects), start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        rt.pause(run_id)
        # WHEN it is resumed half-way through its sleep
        rt.advance(timedelta(minutes=30))
        rt.resume(run_id)
        # THEN it sleeps on until its wake time, and no longer
        assert rt.run(run_id).status == "SLEEPING"
        assert effects["after"] == 0
        rt.advance(timedelta(minutes=31))
        assert rt.run(run_id).status == "COMPLETED"


def test_an_event_for_a_paused_runs_wait_is_kept_and_applied_on_resume():
    app = App("t")

    @app.workflow("approval", trigger="order/placed")
    def flow(ctx: Context) -> dict:
        got = ctx.step.wait_for_event("ok", event="order/approved", match="data.id", timeout="1d")
        return {"approved_by": got.data["by"] if got else None}

    with LocalRuntime(app, start=START) as rt:
        # GIVEN a paused run waiting for its approval
        [run_id] = rt.send(Event(name="order/placed", data={"id": 7}))
        rt.pause(run_id)
        # WHEN the approval arrives while it is paused
        rt.send(Event(name="order/approved", data={"id": 7, "by": "ada"}))
        # THEN the run stays paused, but the wait has its event
        assert rt.run(run_id).status == "PAUSED"
        assert rt.history(run_id)[0].status == "COMPLETED"
        # AND on resume the workflow gets it, even after the wait's timeout has passed
        rt.advance(timedelta(days=2))
        rt.resume(run_id)
        assert rt.run(run_id).status == "COMPLETED"
        assert rt.run(run_id).output == {"approved_by": "ada"}


def test_a_wait_whose_timeout_passes_while_paused_times_out_on_resume():
    app = App("t")

    @app.workflow("approval", trigger="order/placed")
    def flow(ctx: Context) -> str:
        got = ctx.step.wait_for_event("ok", event="order/approved", match="data.id", timeout="1h")
        return "approved" if got else "timed out"

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="order/placed", data={"id": 1}))
        rt.pause(run_id)
        rt.advance(timedelta(hours=3))
        assert rt.run(run_id).status == "PAUSED"
        rt.resume(run_id)
        assert rt.run(run_id).output == "timed out"


def test_a_childs_result_that_arrives_while_its_parent_is_paused_is_applied_on_resume():
    app = App("t")

    @app.workflow("child")
    def child(ctx: Context) -> int:
        ctx.step.sleep("think", "10m")
        return ctx.event.data["n"] * 2

    @app.workflow("parent", trigger="go")
    def parent(ctx: Context) -> int:
        return ctx.step.invoke("double", workflow="child", data={"n": 21}, timeout="1h")

    with LocalRuntime(app, start=START) as rt:
        [parent_id] = rt.send(Event(name="go"))
        rt.pause(parent_id)
        # WHEN the child finishes while the parent is paused
        rt.advance(timedelta(minutes=15))
        [child_run] = rt.runs(workflow="child")
        assert child_run.status == "COMPLETED"
        assert rt.run(parent_id).status == "PAUSED"
        # THEN resuming the parent applies the child's result
        rt.resume(parent_id)
        assert (rt.run(parent_id).status, rt.run(parent_id).output) == ("COMPLETED", 42)


def test_a_paused_run_can_still_be_cancelled(effects):
    with LocalRuntime(_napper(effects), start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        rt.pause(run_id)
        assert rt.cancel(run_id) is True
        assert rt.run(run_id).status == "CANCELLED"
        assert rt.resume(run_id) is False
        rt.advance(timedelta(hours=2))
        assert effects["after"] == 0


def test_no_step_starts_later_than_a_second_after_a_pause():
    # GIVEN steps that each take 0.1 s (of virtual time), and a pause recorded while
    # the second one runs
    app = App("t")
    started: dict[str, datetime] = {}
    paused_at: dict[str, datetime] = {}
    cluster: FakeCluster

    def work(name: str, run_id: str) -> str:
        started[name] = cluster.clock.now()
        cluster.clock.advance(timedelta(milliseconds=100))
        if name == "s1":
            RunControl(cluster.ports, cluster.runner.lifecycle).pause(run_id, "hold on")
            paused_at["t"] = cluster.clock.now()
        return name

    @app.workflow("steady", trigger="go")
    def flow(ctx: Context) -> int:
        for index in range(20):
            ctx.step.run(f"s{index}", work, f"s{index}", ctx.run_id)
        return 20

    cluster = FakeCluster(app, start=START)
    # WHEN the run is started
    [run_id] = cluster.send(Event(name="go"))
    # THEN no step starts more than a second after the pause, and the run stays paused
    run = cluster.store.get_run(run_id)
    assert run.status is RunStatus.PAUSED and run.pause is not None
    assert run.pause.reason == "hold on"
    late = [name for name, at in started.items() if at - paused_at["t"] > timedelta(seconds=1)]
    assert late == []
    ran = len(started)
    assert ran < 20
    # AND resuming it runs the remaining steps, each once
    RunControl(cluster.ports, cluster.runner.lifecycle).resume(run_id)
    cluster.drain()
    assert cluster.store.get_run(run_id).status is RunStatus.COMPLETED
    assert sorted(started) == sorted(f"s{index}" for index in range(20))


def test_a_run_paused_and_resumed_during_a_long_step_runs_that_step_once():
    # GIVEN a holder working on a long step
    started, release, calls = threading.Event(), threading.Event(), []
    app = App("t")

    def slow() -> str:
        calls.append("slow")
        started.set()
        assert release.wait(30)
        return "ok"

    @app.workflow("long", trigger="go")
    def flow(ctx: Context) -> str:
        first = ctx.step.run("slow", slow)
        return ctx.step.run("next", lambda: first + "!")

    with LocalRuntime(app, start=START) as rt:
        run_id = rt.services.lifecycle.start_run(app.get("long"), Event(name="go", id="e1"))
        rt.clients.sqs.purge_queue(QueueUrl=rt.queue_urls["work"])
        message = WorkMessage(run_id=run_id, reason="start")
        holder = threading.Thread(
            target=rt.services.runner.handle, args=(message, Delivery("m1", 1), lambda: 900.0)
        )
        holder.start()
        assert started.wait(30)
        # WHEN it is paused and resumed while the step still runs
        assert rt.control.pause(run_id)
        assert rt.control.resume(run_id)
        # THEN the resume's message leaves the run to its live holder
        rt.drain()
        assert calls == ["slow"]
        # AND the holder carries on and finishes the run
        release.set()
        holder.join(30)
        rt.drain()
        assert (rt.run(run_id).status, rt.run(run_id).output) == ("COMPLETED", "ok!")
        assert calls == ["slow"]


def test_a_run_paused_during_a_step_in_another_process_resumes_at_once_once_it_stopped():
    # GIVEN an invocation in another process (another holder) working on a long step
    started, release, calls = threading.Event(), threading.Event(), []
    app = App("t")

    def slow() -> str:
        calls.append("slow")
        started.set()
        assert release.wait(30)
        return "ok"

    @app.workflow("long", trigger="go")
    def flow(ctx: Context) -> str:
        first = ctx.step.run("slow", slow)
        return ctx.step.run("next", lambda: first + "!")

    with LocalRuntime(app, start=START) as rt:
        elsewhere = Runner(app, rt.services.runner.ports, rt.services.runner.settings)
        run_id = rt.services.lifecycle.start_run(app.get("long"), Event(name="go", id="e1"))
        rt.clients.sqs.purge_queue(QueueUrl=rt.queue_urls["work"])
        message = WorkMessage(run_id=run_id, reason="start")
        holder = threading.Thread(
            target=elsewhere.handle, args=(message, Delivery("m1", 1), lambda: 900.0)
        )
        holder.start()
        assert started.wait(30)
        # WHEN the run is paused, and the invocation finishes its step and stops
        assert rt.control.pause(run_id)
        release.set()
        holder.join(30)
        # THEN it has let go of its claim: nothing waits for its lease to lapse
        paused = rt.services.store.get_run(run_id)
        assert paused.status is RunStatus.PAUSED and paused.pause.lease is None
        # AND resuming queues the run at once, and it finishes without the step again
        assert rt.control.resume(run_id)
        assert rt.services.store.get_run(run_id).status is RunStatus.QUEUED
        rt.drain()
        assert (rt.run(run_id).status, rt.run(run_id).output) == ("COMPLETED", "ok!")
        assert calls == ["slow"]


def test_a_paused_workflow_holds_its_new_runs_until_it_is_resumed(effects):
    with LocalRuntime(_napper(effects), start=START) as rt:
        # GIVEN a paused workflow
        rt.pause_workflow("napper")
        # WHEN events arrive for it
        first = rt.send(Event(name="go", id="a"))
        second = rt.send(Event(name="go", id="b"))
        # THEN its runs are created, held as PAUSED, and run no step
        held = [rt.run(run_id) for run_id in first + second]
        assert [run.status for run in held] == ["PAUSED", "PAUSED"]
        assert effects["before"] == 0
        # AND a run paused by hand is not resumed with the workflow
        rt.resume_workflow("napper")
        [third] = rt.send(Event(name="go", id="c"))
        rt.pause(third)
        rt.pause_workflow("napper")
        rt.resume_workflow("napper")
        assert rt.run(third).status == "PAUSED"
        # WHEN the workflow is resumed, its held runs went on
        assert {rt.run(run_id).status for run_id in first + second} == {"SLEEPING"}
        rt.advance(timedelta(hours=2))
        assert {rt.run(run_id).status for run_id in first + second} == {"COMPLETED"}
        assert rt.run(third).status == "PAUSED"


def test_pausing_an_unknown_run_is_a_key_error():
    app = App("t")

    @app.workflow("w", trigger="go")
    def flow(ctx: Context) -> None:
        return None

    with LocalRuntime(app, start=START) as rt:
        for action in (rt.pause, rt.resume, rt.fire_timers):
            try:
                action("no-such-run")
            except KeyError:
                continue
            raise AssertionError(f"{action.__name__} accepted an unknown run")


def test_firing_a_runs_timers_ends_its_sleep_and_times_out_its_wait_now(effects):
    app = App("t")

    @app.workflow("both", trigger="go")
    def flow(ctx: Context) -> str:
        ctx.step.sleep("nap", "3d")
        effects.record("woke")
        got = ctx.step.wait_for_event("ok", event="never", timeout="7d")
        return "got it" if got else "timed out"

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        # WHEN its timers are fired now, twice
        assert rt.fire_timers(run_id) == ["nap"]
        assert effects["woke"] == 1 and rt.run(run_id).status == "WAITING"
        assert rt.fire_timers(run_id) == ["ok"]
        # THEN it ran on without the virtual clock moving
        assert rt.now() == START
        assert rt.run(run_id).output == "timed out"
        assert rt.fire_timers(run_id) == []
