"""Who may advance a run: one live holder at a time, and a cancel stops the next step.

A RUNNING run is leased to the delivery that claimed it. The lease is taken over only
from a holder that is gone, never from one still working (a long step, a message whose
visibility ran out); and a cancel recorded while the holder works stops it before its
next step, within `control_interval`.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from engine.model import Delivery, Lease, RunStatus, WorkMessage
from engine.testing import FakeCluster
from infra.local import LocalRuntime
from infra.wiring import build_services
from sdk import App, Context, Event
from tests.conftest import START


def test_no_step_starts_later_than_the_control_interval_after_a_cancel():
    # GIVEN steps that each take 0.1 s (of virtual time), and a cancel recorded while
    # the second one runs
    app = App("t")
    started: dict[str, datetime] = {}
    cancelled_at: dict[str, datetime] = {}
    cluster: FakeCluster

    def work(name: str, run_id: str) -> str:
        started[name] = cluster.clock.now()
        cluster.clock.advance(timedelta(milliseconds=100))
        if name == "s1":
            cluster.runner.lifecycle.cancel(run_id, "stop")
            cancelled_at["t"] = cluster.clock.now()
        return name

    @app.workflow("steady", trigger="go")
    def flow(ctx: Context) -> None:
        for index in range(20):
            ctx.step.run(f"s{index}", work, f"s{index}", ctx.run_id)

    cluster = FakeCluster(app, start=START)
    # WHEN the run is started
    [run_id] = cluster.send(Event(name="go"))
    # THEN no step starts more than a second after the cancel (the promise; the engine's
    # control_interval is half that), and the run stays cancelled
    assert cluster.store.get_run(run_id).status is RunStatus.CANCELLED
    late = [name for name, at in started.items() if at - cancelled_at["t"] > timedelta(seconds=1)]
    assert late == []
    assert len(started) <= 2 + 5  # s0, s1 and at most 0.5 s worth of 0.1 s steps


def test_a_cancel_during_a_long_step_stops_the_run_before_its_next_step():
    app = App("t")
    ran: list[str] = []
    cluster: FakeCluster

    def long_step(run_id: str) -> str:
        ran.append("long")
        cluster.clock.advance(timedelta(seconds=45))
        cluster.runner.lifecycle.cancel(run_id, "cancelled from the CLI")
        return "done"

    @app.workflow("slow", trigger="go")
    def flow(ctx: Context) -> None:
        ctx.step.run("long", long_step, ctx.run_id)
        ctx.step.run("next", lambda: ran.append("next"))
        ctx.step.wait_for_event("then", event="never", timeout="1d")

    cluster = FakeCluster(app, start=START)
    [run_id] = cluster.send(Event(name="go"))
    assert ran == ["long"]
    loaded = cluster.store.load(run_id)
    assert loaded.run.status is RunStatus.CANCELLED
    # The step that was running when the cancel came is recorded; nothing after it is.
    assert [s.id for s in loaded.steps.values()] == ["long"]


def _blocking_app(first_call_started: threading.Event, release: threading.Event, calls: list):
    app = App("t")

    def slow() -> str:
        calls.append("slow")
        if len(calls) == 1:
            first_call_started.set()
            assert release.wait(30)
        return "ok"

    @app.workflow("long", trigger="go")
    def flow(ctx: Context) -> str:
        return ctx.step.run("slow", slow)

    return app


def _queued_run(rt: LocalRuntime, app: App) -> str:
    run_id = rt.services.lifecycle.start_run(app.get("long"), Event(name="go", id="e1"))
    rt.clients.sqs.purge_queue(QueueUrl=rt.queue_urls["work"])
    return run_id


def test_a_redelivery_never_runs_beside_a_live_holder_in_the_same_process():
    # GIVEN a holder working on a long step
    started, release, calls = threading.Event(), threading.Event(), []
    app = _blocking_app(started, release, calls)
    with LocalRuntime(app, start=START) as rt:
        run_id = _queued_run(rt, app)
        message = WorkMessage(run_id=run_id, reason="start")
        holder = threading.Thread(
            target=rt.services.runner.handle, args=(message, Delivery("m1", 1), lambda: 900.0)
        )
        holder.start()
        assert started.wait(30)
        # WHEN SQS hands the same message to another consumer (its visibility ran out)
        rt.services.runner.handle(message, Delivery("m1", 2), lambda: 900.0)
        # THEN that consumer leaves the run to its holder
        assert calls == ["slow"]
        assert rt.run(run_id).status == "RUNNING"
        release.set()
        holder.join(30)
        assert rt.run(run_id).status == "COMPLETED"
        rt.advance(timedelta(minutes=5))
        assert calls == ["slow"]


def test_a_holder_in_another_process_keeps_its_run_until_its_lease_expires():
    started, release, calls = threading.Event(), threading.Event(), []
    app = _blocking_app(started, release, calls)
    with LocalRuntime(app, start=START) as rt:
        run_id = _queued_run(rt, app)
        message = WorkMessage(run_id=run_id, reason="start")
        # Another engine process (services of its own) on the same table and queues.
        other = build_services(app, rt.settings, clock=rt.clock, clients=rt.services.clients)
        holder = threading.Thread(
            target=other.runner.handle, args=(message, Delivery("m1", 1), lambda: 900.0)
        )
        holder.start()
        assert started.wait(30)
        rt.services.runner.handle(message, Delivery("m1", 2), lambda: 900.0)
        assert calls == ["slow"]
        release.set()
        holder.join(30)
        assert rt.run(run_id).status == "COMPLETED"
        assert calls == ["slow"]


def test_a_claim_whose_holder_vanished_is_taken_over_once_its_lease_expires():
    # GIVEN a run claimed by a process that died without a trace (no renewals)
    app = App("t")
    calls: list[str] = []

    @app.workflow("long", trigger="go")
    def flow(ctx: Context) -> str:
        return ctx.step.run("work", lambda: calls.append("work") or "ok")

    with LocalRuntime(app, start=START) as rt:
        run_id = _queued_run(rt, app)
        store = rt.services.store
        run = store.get_run(run_id)
        lease = Lease(
            message_id="m-dead",
            receive_count=1,
            expires_at=rt.now() + timedelta(seconds=60),
            holder="dead-process",
        )
        store.write_run(
            run.model_copy(
                update={"status": RunStatus.RUNNING, "version": run.version + 1, "lease": lease}
            ),
            expected_version=run.version,
        )
        # WHEN its message comes back while the lease still runs
        rt.services.runner.handle(
            WorkMessage(run_id=run_id, reason="start"), Delivery("m-dead", 2), lambda: 900.0
        )
        # THEN nothing runs yet, but a look-again message is on its way
        assert calls == [] and rt.run(run_id).status == "RUNNING"
        # AND once the lease has expired the run is taken over and finished, once
        rt.advance(timedelta(seconds=90))
        assert rt.run(run_id).status == "COMPLETED"
        assert calls == ["work"]
