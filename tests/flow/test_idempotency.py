"""`idempotency="..."`: one run per key value per 24 hours; later events are duplicates."""

from __future__ import annotations

from datetime import timedelta

from engine.flow.ports import CreateRun
from infra.local import LocalRuntime
from sdk import App, Context, Event
from tests.conftest import START
from tests.flow.helpers import commits, crash_once, outcome, said


def shop() -> App:
    app = App("shop")

    @app.workflow("charge", trigger="order/placed", idempotency="event.data.orderId")
    def charge(ctx: Context) -> str:
        return ctx.step.run("charge", lambda: f"charged {ctx.event.data['orderId']}")

    @app.workflow("audit", trigger="order/placed")
    def audit(ctx: Context) -> str:
        return "logged"

    return app


def order(event_id: str, order_id: str) -> Event:
    return Event(name="order/placed", data={"orderId": order_id}, id=event_id)


def charges(rt: LocalRuntime) -> list:
    return rt.runs(workflow="charge")


def test_a_second_event_with_the_same_key_within_24h_is_a_duplicate_of_the_first_run():
    with LocalRuntime(shop(), start=START) as rt:
        # GIVEN a run started for order o-1
        started = rt.send(order("e1", "o-1"))
        [first] = [run for run in started if run.startswith("charge-")]
        # WHEN another event (another id) for the same order arrives an hour later
        rt.advance("1h")
        again = rt.send(order("e2", "o-1"))
        # THEN it starts no second charge, and says which run it duplicates
        assert [run for run in again if run.startswith("charge-")] == []
        [entry] = [s for s in outcome(rt, "e2").skipped if s.workflow_id == "charge"]
        assert entry.control == "idempotency" and entry.run_id == first
        assert entry.reason == (
            f'a duplicate of run {first} by idempotency key event.data.orderId = "o-1"'
        )
        # AND the event still started the workflows without the control
        assert any(run.startswith("audit-") for run in again)
        assert said(rt, "e2").startswith("started run audit-")
        # AND another order is charged
        rt.send(order("e3", "o-2"))
        assert len(charges(rt)) == 2


def test_the_key_is_free_again_after_24_hours():
    with LocalRuntime(shop(), start=START) as rt:
        rt.send(order("e1", "o-1"))
        rt.advance(timedelta(hours=24, seconds=1))
        rt.send(order("e2", "o-1"))
        assert len(charges(rt)) == 2


def test_a_redelivered_event_is_not_its_own_duplicate():
    # GIVEN SQS delivering every message twice
    with LocalRuntime(shop(), start=START, deliveries_per_message=2) as rt:
        # WHEN an event arrives
        rt.send(order("e1", "o-1"))
        # THEN one run is charged, and the second delivery knows it started it
        [run] = charges(rt)
        assert run.status == "COMPLETED"
        assert run.run_id in outcome(rt, "e1").run_ids


def test_a_crash_after_the_key_was_taken_starts_the_run_once_on_redelivery():
    # GIVEN a trigger handler that dies right after committing the key and the run
    crash = crash_once("flow", commits(CreateRun))
    with LocalRuntime(shop(), start=START, ports_hook=crash) as rt:
        rt.send(order("e1", "o-1"))
        assert crash.state["fired"]
        # THEN the redelivered event found what it had done: one run, started once
        [run] = charges(rt)
        assert run.status == "COMPLETED"
        assert rt.history(run.run_id)[0].attempts == 1
        # AND the key stays taken for that run
        rt.send(order("e2", "o-1"))
        assert len(charges(rt)) == 1
