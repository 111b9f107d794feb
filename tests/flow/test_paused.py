"""Flow-controlled runs that are paused (DESIGN.md, "Run control"), on moto.

- A run queued for a concurrency slot that is paused does not take the slot: a slot
  granted to it goes to the next run in line, and on resume it queues again, in its
  place (its place derives from its creation), and runs.
- A run paused while it holds a slot gives the slot up when its invocation stops (at
  its next step), so the runs queued behind it go on; on resume it waits for a slot.
- A debounced or batched run that is paused keeps collecting: events still join it
  (their lookup says so), and on resume it starts with what it has, at once if its
  time has come, else when it comes; so does a run delayed by a negative priority.
- `Timeouts(start=...)` judges a paused run on resume: one that has not started by its
  deadline is cancelled then (not while paused: a paused run is left as it is).
"""

from __future__ import annotations

import threading
from datetime import timedelta

from infra.local import LocalRuntime
from sdk import App, Batch, Concurrency, Context, Debounce, Event, Priority, Timeouts
from tests.conftest import START
from tests.flow.helpers import outcome
from tests.flow.test_concurrency import Nested, app_with, order, run_of


def test_a_run_paused_while_queued_for_a_slot_lets_the_next_one_have_it():
    nested = Nested()
    with LocalRuntime(app_with(nested, Concurrency(limit=1)), start=START) as rt:
        nested.rt = rt
        # GIVEN a run holding the only slot while two more orders queue behind it
        nested.during["o1"] = [order("o2"), order("o3")]
        # AND the first in line is paused while it waits
        nested.after = lambda: rt.control.pause(run_of(rt, "o2"))
        [first] = rt.send(order("o1"))
        second, third = run_of(rt, "o2"), run_of(rt, "o3")
        # THEN when the slot freed, the paused run did not take it: the next one ran
        assert rt.run(first).status == "COMPLETED"
        assert rt.run(third).status == "COMPLETED"
        assert rt.run(second).status == "PAUSED"
        assert rt.history(second) == []
        # WHEN it is resumed
        assert rt.resume(second)
        # THEN it takes the free slot and runs, once
        assert rt.run(second).status == "COMPLETED"
        assert [step.attempts for step in rt.history(second)] == [1]
        assert nested.peak == 1


def test_a_run_paused_while_queued_waits_for_a_busy_slot_on_resume():
    nested = Nested()
    with LocalRuntime(app_with(nested, Concurrency(limit=1)), start=START) as rt:
        nested.rt = rt
        held: dict[str, str] = {}

        def pause_and_resume() -> None:
            # While the first run holds the slot, the queued one is paused and resumed.
            waiting = run_of(rt, "o2")
            rt.control.pause(waiting)
            rt.control.resume(waiting)
            thread = threading.Thread(target=rt.drain)
            thread.start()
            thread.join()
            held["status"] = rt.run(waiting).status
            held["waiting"] = rt.run(waiting).waiting or ""

        nested.during["o1"] = [order("o2")]
        nested.after = pause_and_resume
        rt.send(order("o1"))
        # THEN on resume it queued again for the slot, rather than running beside the first
        assert held["status"] == "QUEUED"
        assert held["waiting"].startswith("concurrency: at most 1 at once")
        assert nested.peak == 1
        assert [run.status for run in rt.runs()] == ["COMPLETED"] * 2


def test_a_run_paused_while_it_holds_a_slot_gives_it_up():
    nested = Nested()
    shipped: list[str] = []
    app = App("shop")

    @app.workflow("fulfil", trigger="order/placed", concurrency=[Concurrency(limit=1)])
    def fulfil(ctx: Context) -> str:
        name = ctx.event.data["order"]
        ctx.step.run("pack", nested.step, name)
        ctx.step.run("ship", shipped.append, name)
        return name

    with LocalRuntime(app, start=START) as rt:
        nested.rt = rt

        def pause_first() -> None:
            # The pause is recorded while "pack" executes; a second later its
            # invocation looks at the run before starting "ship".
            rt.control.pause(run_of(rt, "o1"))
            rt.clock.set(rt.now() + timedelta(seconds=1))

        # GIVEN a run holding the only slot, with another order queued behind it
        nested.during["o1"] = [order("o2")]
        # WHEN it is paused during its first step
        nested.after = pause_first
        [first] = rt.send(order("o1"))
        second = run_of(rt, "o2")
        # THEN it stopped before its next step, and gave up the slot: the other ran
        assert rt.run(first).status == "PAUSED"
        assert rt.run(second).status == "COMPLETED"
        assert shipped == ["o2"]
        # WHEN it is resumed, it takes the slot again and finishes, each step once
        assert rt.resume(first)
        assert rt.run(first).status == "COMPLETED"
        assert shipped == ["o2", "o1"]
        assert [step.attempts for step in rt.history(first)] == [1, 1]
        assert nested.peak == 1


def debounced_app(**controls) -> App:
    app = App("crm")

    @app.workflow("sync", trigger="contact/updated", **controls)
    def sync(ctx: Context) -> list:
        return [event.data["version"] for event in ctx.events]

    return app


def edit(version: int) -> Event:
    return Event(
        name="contact/updated", data={"contact": "c1", "version": version}, id=f"e{version}"
    )


def test_a_paused_debounced_run_keeps_taking_events_and_starts_with_the_last_on_resume():
    app = debounced_app(debounce=Debounce(period="1m", key="event.data.contact"))
    with LocalRuntime(app, start=START) as rt:
        # GIVEN a debounced run, paused before its quiet minute is over
        [run_id] = rt.send(edit(1))
        assert rt.pause(run_id)
        # WHEN more edits come, and its time passes
        rt.advance("30s")
        assert rt.send(edit(2)) == []
        rt.advance("5m")
        # THEN they were debounced into it, and it did not start
        assert outcome(rt, "e2").skipped[0].reason == f"debounced into run {run_id}"
        assert rt.run(run_id).status == "PAUSED"
        # AND on resume it starts at once, with the last edit
        assert rt.resume(run_id)
        assert rt.run(run_id).status == "COMPLETED"
        assert rt.run(run_id).output == [2]


def test_a_paused_debounced_run_resumed_early_starts_when_its_time_comes():
    app = debounced_app(debounce=Debounce(period="1m", key="event.data.contact"))
    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(edit(1))
        rt.pause(run_id)
        rt.advance("10s")
        rt.resume(run_id)
        assert rt.run(run_id).status == "QUEUED"
        rt.advance("50s")
        run = rt.run(run_id)
        assert (run.status, run.ended_at) == ("COMPLETED", START + timedelta(minutes=1))


def test_a_batch_held_by_a_paused_workflow_collects_and_runs_on_resume():
    app = debounced_app(batch_events=Batch(max_size=10, timeout="30s"))
    with LocalRuntime(app, start=START) as rt:
        # GIVEN a paused workflow
        rt.pause_workflow("sync")
        # WHEN events come, past the batch's timeout
        [run_id] = rt.send(edit(1))
        rt.advance("1m")
        rt.send(edit(2))
        # THEN its batch's run is held, and the events joined it
        assert rt.run(run_id).status == "PAUSED"
        assert outcome(rt, "e2").skipped[0].reason == (
            f"batched into run {run_id} (event 2 of at most 10)"
        )
        # AND resuming the workflow runs the batch, with both
        assert rt.resume_workflow("sync") == [run_id]
        assert rt.run(run_id).output == [1, 2]


def test_a_run_delayed_by_priority_in_a_paused_workflow_starts_when_its_delay_ends():
    app = debounced_app(priority=Priority(run="-120"))
    with LocalRuntime(app, start=START) as rt:
        rt.pause_workflow("sync")
        [run_id] = rt.send(edit(1))
        rt.advance("1m")
        # WHEN the workflow is resumed before the run's delay has passed
        rt.resume_workflow("sync")
        assert rt.run(run_id).status == "QUEUED"
        # THEN it starts when the delay ends (its start message, dropped while it was
        # held, is replaced by a timer)
        rt.advance("1m")
        run = rt.run(run_id)
        assert (run.status, run.output) == ("COMPLETED", [1])
        assert run.ended_at == START + timedelta(minutes=2)


def test_a_run_paused_past_its_start_deadline_is_cancelled_on_resume():
    app = debounced_app(
        debounce=Debounce(period="1m", key="event.data.contact"),
        timeouts=Timeouts(start="5m"),
    )
    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(edit(1))
        rt.pause(run_id)
        rt.advance("10m")
        # A paused run is left as it is, past its deadline too
        assert rt.run(run_id).status == "PAUSED"
        rt.resume(run_id)
        run = rt.run(run_id)
        assert run.status == "CANCELLED"
        assert run.error is not None and "Timeouts start" in run.error.message
