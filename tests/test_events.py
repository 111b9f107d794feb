"""Events through EventBridge: triggers, waits, cancellation, lookback."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest

from examples import app as shop
from examples import services
from infra.lambda_functions import handle_events, handle_work
from infra.local import LocalRuntime
from sdk import App, CancelOn, Context, Event, Trigger
from tests.conftest import START


@pytest.fixture(autouse=True)
def fresh_services():
    services.reset()
    yield
    services.reset()


def put_event(rt, name, data):
    """What an application does: plain boto3 put_events, no Stepline code."""
    response = rt.clients.events.put_events(
        Entries=[
            {
                "Source": "my.app",
                "DetailType": name,
                "Detail": json.dumps(data),
                "EventBusName": rt.settings.event_bus,
            }
        ]
    )
    assert response["FailedEntryCount"] == 0
    rt.drain()
    return response["Entries"][0]["EventId"]


def test_plain_put_events_starts_a_run_through_the_trigger_rule_and_queue():
    with LocalRuntime(shop, start=START) as rt:
        event_id = put_event(rt, "user/signup", {"userId": "u1"})
        [run] = rt.runs(workflow="user-onboarding")
        assert run.event_id == event_id
        assert run.status == "SLEEPING"
        assert rt.deliveries["events"] == 1
        assert services.mailer.sent == [("u1", "welcome")]


def test_a_redelivered_event_starts_nothing_new():
    with LocalRuntime(shop, start=START, deliveries_per_message=2) as rt:
        rt.send(Event(name="user/signup", data={"userId": "u1"}))
        assert len(rt.runs(workflow="user-onboarding")) == 1
        assert services.mailer.count("welcome") == 1


def test_an_event_with_an_explicit_id_starts_each_workflow_once_however_often_sent():
    with LocalRuntime(shop, start=START) as rt:
        first = rt.send(Event(name="user/signup", data={"userId": "u1"}, id="signup-u1"))
        second = rt.send(Event(name="user/signup", data={"userId": "u1"}, id="signup-u1"))
        assert first == second
        assert len(rt.runs()) == 1


def test_one_event_may_start_several_workflows_and_trigger_expressions_filter():
    app = App("t")
    app.workflow("all-signups", trigger="signup")(lambda ctx: "all")
    app.workflow("pro-signups", trigger=Trigger("signup", if_="event.data.plan == 'pro'"))(
        lambda ctx: "pro"
    )
    with LocalRuntime(app, start=START) as rt:
        assert len(rt.send(Event(name="signup", data={"plan": "pro"}))) == 2
        [only] = rt.send(Event(name="signup", data={"plan": "free"}))
        assert rt.run(only).workflow_id == "all-signups"
        # A trigger expression that cannot be evaluated on an event is "no match".
        assert len(rt.send(Event(name="signup", data={}))) == 1


def test_profile_completed_within_a_day_resolves_the_wait_with_the_event():
    with LocalRuntime(shop, start=START) as rt:
        [run_id] = rt.send(Event(name="app/user.signup", data={"userId": "u1"}))
        assert rt.run(run_id).status == "WAITING"
        rt.advance(timedelta(hours=3))
        event_id = put_event(rt, "app/user.profile.completed", {"userId": "u1", "bio": "hi"})
        wait = rt.history(run_id)[0]
        assert wait.status == "COMPLETED"
        assert wait.output["id"] == event_id
        assert wait.output["data"] == {"userId": "u1", "bio": "hi"}
        assert rt.run(run_id).status == "SLEEPING"  # on to the drip
        assert services.mailer.count("complete-your-profile") == 0
        rt.advance(timedelta(days=11))
        run = rt.run(run_id)
        assert run.status == "COMPLETED" and run.output == {"profile_completed": True}


def test_no_profile_within_a_day_times_out_to_none_and_sends_the_followup():
    with LocalRuntime(shop, start=START) as rt:
        [run_id] = rt.send(Event(name="app/user.signup", data={"userId": "u2"}))
        rt.advance(timedelta(hours=24, seconds=1))
        wait = rt.history(run_id)[0]
        assert wait.status == "TIMED_OUT"
        assert services.mailer.sent == [("u2", "complete-your-profile")]
        # An event after the timeout changes nothing.
        put_event(rt, "app/user.profile.completed", {"userId": "u2"})
        assert rt.history(run_id)[0].status == "TIMED_OUT"
        rt.advance(timedelta(days=11))
        assert rt.run(run_id).output == {"profile_completed": False}


def test_an_event_resolves_only_the_wait_on_its_own_key():
    with LocalRuntime(shop, start=START) as rt:
        [a] = rt.send(Event(name="app/user.signup", data={"userId": "a"}))
        [b] = rt.send(Event(name="app/user.signup", data={"userId": "b"}))
        put_event(rt, "app/user.profile.completed", {"userId": "b"})
        assert rt.history(a)[0].status == "WAITING"
        assert rt.history(b)[0].status == "COMPLETED"
        assert rt.run(a).status == "WAITING"


def test_an_event_published_after_the_run_started_but_before_the_wait_is_not_lost():
    app = App("t")

    @app.workflow("late-wait", trigger="order/created")
    def flow(ctx: Context) -> str | None:
        ctx.step.sleep("cool-off", "1h")
        paid = ctx.step.wait_for_event(
            "paid", event="order/paid", match="data.orderId", timeout="1d"
        )
        return paid.id if paid else None

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="order/created", data={"orderId": 7}))
        rt.advance(timedelta(minutes=30))
        paid_id = put_event(rt, "order/paid", {"orderId": 7})
        put_event(rt, "order/paid", {"orderId": 8})  # another order's payment
        rt.advance(timedelta(hours=1))
        run = rt.run(run_id)
        assert run.status == "COMPLETED"
        assert run.output == paid_id


def test_an_event_sent_right_after_the_trigger_reaches_the_wait_inngest_1433():
    app = App("t")

    @app.workflow("quick", trigger="signup")
    def flow(ctx: Context) -> bool:
        return (
            ctx.step.wait_for_event("verified", event="verified", match="data.user", timeout="1h")
            is not None
        )

    with LocalRuntime(app, start=START) as rt:
        # Both events are on their queues before any handler runs; the wait resolver
        # handles "verified" before the run has even registered its wait.
        for name in ("signup", "verified"):
            rt.clients.events.put_events(
                Entries=[
                    {
                        "Source": "s",
                        "DetailType": name,
                        "Detail": '{"user": "u1"}',
                        "EventBusName": rt.settings.event_bus,
                    }
                ]
            )
        rt.drain()
        [run] = rt.runs()
        assert run.status == "COMPLETED" and run.output is True


def test_one_event_consumed_by_a_wait_is_not_reused_by_the_next_wait_on_the_same_name():
    app = App("t")

    @app.workflow("two-approvals", trigger="doc/submitted")
    def flow(ctx: Context) -> list[str | None]:
        approvals = []
        for _ in range(2):
            got = ctx.step.wait_for_event(
                "approval", event="doc/approved", match="data.doc", timeout="1d"
            )
            approvals.append(got.data["by"] if got else None)
        return approvals

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="doc/submitted", data={"doc": 1}))
        put_event(rt, "doc/approved", {"doc": 1, "by": "ann"})
        assert rt.run(run_id).status == "WAITING"
        put_event(rt, "doc/approved", {"doc": 1, "by": "bob"})
        assert rt.run(run_id).output == ["ann", "bob"]


def test_wait_if_expressions_see_the_trigger_as_event_and_the_incoming_as_async():
    app = App("t")

    @app.workflow("big-refunds", trigger="order/created")
    def flow(ctx: Context) -> int | None:
        refund = ctx.step.wait_for_event(
            "refund",
            event="order/refunded",
            match="data.orderId",
            if_="async.data.amount > event.data.amount / 2",
            timeout="1d",
        )
        return refund.data["amount"] if refund else None

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="order/created", data={"orderId": 1, "amount": 100}))
        put_event(rt, "order/refunded", {"orderId": 1, "amount": 10})
        assert rt.run(run_id).status == "WAITING"
        put_event(rt, "order/refunded", {"orderId": 1, "amount": 80})
        assert rt.run(run_id).output == 80


def test_deleting_the_user_mid_drip_cancels_the_run_and_its_pending_timer():
    with LocalRuntime(shop, start=START) as rt:
        [run_id] = rt.send(Event(name="app/user.signup", data={"userId": "u1"}))
        [other] = rt.send(Event(name="app/user.signup", data={"userId": "u2"}))
        rt.advance(timedelta(days=1, minutes=1))  # profile wait timed out; drip sleeping 3d
        assert rt.run(run_id).status == "SLEEPING"
        assert len(rt.pending_schedules()) == 2
        put_event(rt, "app/user.deleted", {"userId": "u1"})
        run = rt.run(run_id)
        assert run.status == "CANCELLED"
        assert "app/user.deleted" in run.error.message
        assert rt.deliveries["events"] >= 1
        # The cancelled run's wake-up is gone; the other user's remains.
        assert len(rt.pending_schedules()) == 1
        rt.advance(timedelta(days=11))
        assert rt.run(run_id).status == "CANCELLED"
        assert rt.run(other).status == "COMPLETED"
        sent_to_u1 = [template for user, template in services.mailer.sent if user == "u1"]
        assert sent_to_u1 == ["complete-your-profile"]


def test_cancelling_a_waiting_run_withdraws_its_wait():
    with LocalRuntime(shop, start=START) as rt:
        [run_id] = rt.send(Event(name="app/user.signup", data={"userId": "u1"}))
        assert rt.cancel(run_id) is True
        assert rt.run(run_id).status == "CANCELLED"
        wait = rt.history(run_id)[0]
        assert wait.status == "CANCELLED"
        assert (
            rt.services.store.find_waiters('WAIT#app/user.profile.completed#data.userId#"u1"') == []
        )
        # A late event neither resolves nor revives it; cancelling again is a no-op.
        put_event(rt, "app/user.profile.completed", {"userId": "u1"})
        assert rt.run(run_id).status == "CANCELLED"
        assert rt.cancel(run_id) is False


def test_a_cancel_event_that_beats_the_run_start_still_cancels_it():
    app = App("t")

    @app.workflow("drip", trigger="start", cancel_on=[CancelOn("stop", match="data.user")])
    def flow(ctx: Context) -> str:
        ctx.step.run("first-mail", lambda: services.mailer.send("x", "first"))
        return "done"

    with LocalRuntime(app, start=START) as rt:
        # Both on the queue before any handler runs: "stop" is handled before the run exists.
        for name in ("stop", "start"):
            rt.clients.events.put_events(
                Entries=[
                    {
                        "Source": "s",
                        "DetailType": name,
                        "Detail": '{"user": "u1"}',
                        "EventBusName": rt.settings.event_bus,
                    }
                ]
            )
        # Handle the events ("stop", then "start"), then the engine.
        for role, handler in (("events", handle_events), ("work", handle_work)):
            rt._deliver_batch(role, handler)
        rt.drain()
        [run] = rt.runs()
        assert run.status == "CANCELLED"
        assert services.mailer.sent == []


def test_cancel_on_timeout_limits_how_long_the_rule_applies():
    app = App("t")

    @app.workflow(
        "window", trigger="start", cancel_on=[CancelOn("stop", match="data.user", timeout="1h")]
    )
    def flow(ctx: Context) -> str:
        ctx.step.sleep("nap", "1d")
        return "done"

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="start", data={"user": 1}))
        rt.advance(timedelta(hours=2))
        rt.send(Event(name="stop", data={"user": 1}))
        assert rt.run(run_id).status == "SLEEPING"
        rt.advance(timedelta(days=1))
        assert rt.run(run_id).status == "COMPLETED"


def test_an_event_no_workflow_uses_never_reaches_stepline_and_says_why(caplog):
    with LocalRuntime(shop, start=START) as rt, caplog.at_level(logging.INFO, "stepline"):
        assert rt.send(Event(name="nobody/cares", data={"x": 1})) == []
        # The bus's rules list the names the app uses: this one is not delivered at all.
        assert rt.deliveries == {"events": 0, "work": 0}
        assert "starts no workflow" in caplog.text and "no rule routes" in caplog.text
        assert rt.dead_letters("events") == []
