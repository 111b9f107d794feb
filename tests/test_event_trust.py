"""What an outsider on the event bus can and cannot do to a run (issue 10, items 7 and 8).

An outsider may publish any event with any id and any claimed time. It must not be able
to take the place of an event a run sends (item 7), make an id of one kind equal an id
of another (item 7), or resolve a wait with an event that reached the bus before the
run began (item 8).
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import timedelta

from engine.ids import run_id_for
from infra.lambda_functions import handle_events
from infra.local import LocalRuntime
from sdk import App, Context, Event
from tests.conftest import START


def put_event(rt: LocalRuntime, name: str, data: dict, **extra) -> str:
    """What an application (or an outsider) does: plain boto3 put_events."""
    response = rt.clients.events.put_events(
        Entries=[
            {
                "Source": "outsider",
                "DetailType": name,
                "Detail": json.dumps(data),
                "EventBusName": rt.settings.event_bus,
                **extra,
            }
        ]
    )
    assert response["FailedEntryCount"] == 0
    rt.drain()
    return response["Entries"][0]["EventId"]


# -- item 7: the ids a run derives ----------------------------------------------------------


def _public_sent_id(run_id: str, step_key: str, index: int) -> str:
    """The send_event id anyone could compute from the run id alone (before the fix)."""
    text = "\x1f".join(["send", run_id, step_key, str(index)])
    return f"evt-{hashlib.sha256(text.encode()).hexdigest()[:32]}"


def shop_app() -> App:
    app = App("shop")

    @app.workflow("checkout", trigger="order/created")
    def checkout(ctx: Context) -> list[str]:
        ctx.step.sleep("settle", "1m")
        order = ctx.event.data
        return ctx.step.send_event(
            "paid",
            Event(name="order/paid", data={"orderId": order["orderId"], "to": order["to"]}),
        )

    @app.workflow("ship", trigger="order/paid")
    def ship(ctx: Context) -> str:
        return ctx.step.run("ship", lambda: f"shipped to {ctx.event.data['to']}")

    return app


def test_an_outsider_cannot_publish_the_event_a_run_will_send_before_it_does():
    with LocalRuntime(shop_app(), start=START) as rt:
        [checkout] = rt.send(
            Event(name="order/created", data={"orderId": 1, "to": "Ada"}, id="order-1")
        )
        # The outsider knows the run (its id derives from the order's event id) and
        # publishes "order/paid" first, under the id it expects the run to use.
        predicted = _public_sent_id(checkout, "00001", 0)
        put_event(rt, "order/paid", {"orderId": 1, "to": "Mallory", "$stepline": {"id": predicted}})

        rt.advance(timedelta(minutes=2))
        [sent_id] = rt.run(checkout).output
        assert sent_id != predicted
        shipping = rt.run(run_id_for("ship", sent_id))
        assert shipping.status == "COMPLETED"
        assert shipping.output == "shipped to Ada"


def test_a_runs_secret_is_never_shown_or_logged(caplog):
    with LocalRuntime(shop_app(), start=START) as rt, caplog.at_level(logging.DEBUG, "stepline"):
        [checkout] = rt.send(
            Event(name="order/created", data={"orderId": 3, "to": "Ada"}, id="order-3")
        )
        rt.advance(timedelta(minutes=2))
        secret = rt.services.store.get_run(checkout).secret
        assert secret and len(secret) >= 32  # 128 bits as hex
        shown = [
            json.dumps(rt.run(checkout).to_json(), default=str),
            repr(rt.run(checkout)),
            json.dumps([step.to_json() for step in rt.history(checkout)], default=str),
            repr(rt.services.store.get_run(checkout)),
        ]
        assert all(secret not in text for text in shown)
        assert caplog.records
        assert all(secret not in record.getMessage() for record in caplog.records)


def test_a_run_created_before_runs_had_secrets_still_sends_the_same_ids():
    with LocalRuntime(shop_app(), start=START) as rt:
        [checkout] = rt.send(
            Event(name="order/created", data={"orderId": 4, "to": "Ada"}, id="order-4")
        )
        store = rt.services.store
        old = store.get_run(checkout)
        # What an earlier version stored: the same run, without a secret.
        store.write_run(
            old.model_copy(update={"secret": None, "version": old.version + 1}),
            expected_version=old.version,
        )
        rt.advance(timedelta(minutes=2))
        assert rt.run(checkout).output == [_public_sent_id(checkout, "00001", 0)]


def collision_app() -> App:
    app = App("shop")

    @app.workflow("order", trigger="order/created")
    def order(ctx: Context) -> dict:
        ctx.step.sleep("settle", "1m")
        return ctx.step.invoke("refund", workflow="invoke", data={"amount": 5}, timeout="1h")

    # A workflow that happens to be called "invoke", started by its own event too.
    @app.workflow("invoke", trigger="refund/requested")
    def refund(ctx: Context) -> dict:
        return {"refunded": ctx.event.data["amount"]}

    return app


def test_an_event_id_cannot_make_an_event_started_run_take_a_child_runs_id():
    with LocalRuntime(collision_app(), start=START) as rt:
        [parent] = rt.send(Event(name="order/created", data={}, id="order-5"))
        # Before the fix run_id_for("invoke", f"{parent}\x1f00001") was the id of the
        # child that step 00001 of the parent starts: the outsider's run took its place.
        rt.send(Event(name="refund/requested", data={"amount": 1000}, id=f"{parent}\x1f00001"))
        rt.advance(timedelta(minutes=2))
        assert rt.run(parent).status == "COMPLETED"
        assert rt.run(parent).output == {"refunded": 5}


# -- item 8: an event's time ------------------------------------------------------------------


def approval_app() -> App:
    app = App("docs")

    @app.workflow("approval", trigger="doc/submitted")
    def approval(ctx: Context) -> str | None:
        got = ctx.step.wait_for_event(
            "approved", event="doc/approved", match="data.doc", timeout="1d"
        )
        return got.data["by"] if got else None

    return app


def test_an_event_claiming_a_later_stepline_time_does_not_resolve_a_wait_begun_after_it():
    with LocalRuntime(approval_app(), start=START) as rt:
        claimed = (START + timedelta(minutes=10)).isoformat()
        put_event(rt, "doc/approved", {"doc": 1, "by": "mallory", "$stepline": {"ts": claimed}})
        rt.advance(timedelta(minutes=1))
        [run_id] = rt.send(Event(name="doc/submitted", data={"doc": 1}))
        assert rt.run(run_id).status == "WAITING"
        put_event(rt, "doc/approved", {"doc": 1, "by": "ann"})
        assert rt.run(run_id).output == "ann"


def test_an_event_claiming_a_later_eventbridge_time_does_not_resolve_a_wait_begun_after_it():
    with LocalRuntime(approval_app(), start=START) as rt:
        put_event(rt, "doc/approved", {"doc": 1, "by": "mallory"}, Time=START + timedelta(hours=1))
        rt.advance(timedelta(minutes=1))
        [run_id] = rt.send(Event(name="doc/submitted", data={"doc": 1}))
        assert rt.run(run_id).status == "WAITING"


def test_an_event_is_filed_under_the_time_its_queue_received_it():
    with LocalRuntime(approval_app(), start=START) as rt:
        [run_id] = rt.send(Event(name="doc/submitted", data={"doc": 1}))
        rt.advance(timedelta(minutes=5))
        received = rt.now()
        put_event(
            rt,
            "doc/approved",
            {"doc": 1, "by": "ann", "$stepline": {"ts": "2020-01-01T00:00:00+00:00"}},
            Time=START - timedelta(days=3),
        )
        [wait] = rt.history(run_id)
        assert wait.status == "COMPLETED"
        assert wait.output["ts"] == received.isoformat().replace("+00:00", "Z")
        assert rt.services.store.get_run(run_id).event_ts == START


def test_a_record_without_a_sent_timestamp_is_filed_under_the_handlers_clock():
    with LocalRuntime(approval_app(), start=START) as rt:
        rt.advance(timedelta(minutes=1))
        [run_id] = rt.send(Event(name="doc/submitted", data={"doc": 1}))
        body = {
            "id": "e-backdated",
            "detail-type": "doc/approved",
            "source": "outsider",
            "time": "2020-01-01T00:00:00Z",
            "detail": {"doc": 1, "by": "ann"},
        }
        record = {"messageId": "m1", "body": json.dumps(body), "attributes": {}}
        assert handle_events({"Records": [record]}, None, services=rt.services) == {
            "batchItemFailures": []
        }
        rt.drain()
        [wait] = rt.history(run_id)
        assert wait.status == "COMPLETED"
        assert wait.output["ts"].startswith(rt.now().strftime("%Y-%m-%dT%H:%M"))
