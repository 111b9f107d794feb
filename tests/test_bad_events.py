"""Malformed events and failing expressions: a clear log line, the batch keeps flowing,
nothing is retried forever."""

from __future__ import annotations

import json
import logging

import pytest

from infra.eventbridge import EventTooLargeError
from infra.local import LocalRuntime
from infra.resources import MAX_RECEIVE_COUNT
from sdk import App, Context, Event
from tests.conftest import START


def recording_app() -> App:
    app = App("t")
    app.workflow("on-ping", trigger="ping")(lambda ctx: ctx.event.data)
    return app


BAD_BODIES = [
    "not json at all",
    json.dumps(["a", "list"]),
    json.dumps({"id": "e1", "detail": {"x": 1}}),  # no detail-type
    json.dumps({"id": "e2", "detail-type": "ping", "detail": "a string"}),
    json.dumps({"id": "e3", "detail-type": "ping", "detail": None}),
    json.dumps({"detail-type": "ping", "detail": {}}),  # no id
]


def test_malformed_records_reach_the_dlq_and_good_records_behind_them_still_flow(caplog):
    queue = "events"
    with (
        LocalRuntime(recording_app(), start=START) as rt,
        caplog.at_level(logging.ERROR, "stepline"),
    ):
        url = rt.queue_urls[queue]
        for body in BAD_BODIES:
            rt.clients.sqs.send_message(QueueUrl=url, MessageBody=body)
        [run_id] = rt.send(Event(name="ping", data={"ok": True}))
        assert rt.run(run_id).output == {"ok": True}
        rt.drain()
        assert rt.dead_letter_count(queue) == len(BAD_BODIES)
        assert "malformed" in caplog.text
        assert "Detail must be a JSON object" in caplog.text
        assert "no detail-type" in caplog.text
        # Each bad record was tried maxReceiveCount times, not forever.
        assert rt.deliveries[queue] <= 1 + len(BAD_BODIES) * MAX_RECEIVE_COUNT


def test_an_event_over_eventbridges_size_limit_is_refused_with_a_clear_error():
    with (
        LocalRuntime(recording_app(), start=START) as rt,
        pytest.raises(EventTooLargeError, match=r"takes at most 262,144"),
    ):
        rt.send(Event(name="ping", data={"blob": "x" * 300_000}))


def test_a_wait_expression_that_errors_on_an_event_is_logged_with_its_id_as_no_match(caplog):
    app = App("t")

    @app.workflow("strict", trigger="go")
    def flow(ctx: Context) -> int | None:
        got = ctx.step.wait_for_event(
            "big", event="amount", match="data.k", if_="async.data.amount > 5", timeout="1h"
        )
        return got.data["amount"] if got else None

    with LocalRuntime(app, start=START) as rt, caplog.at_level(logging.WARNING, "stepline"):
        [run_id] = rt.send(Event(name="go", data={"k": 1}))
        rt.send(Event(name="amount", data={"k": 1, "amount": "lots"}, id="weird-event"))
        assert rt.run(run_id).status == "WAITING"
        assert "weird-event" in caplog.text and "no match" in caplog.text
        rt.send(Event(name="amount", data={"k": 1, "amount": 9}))
        assert rt.run(run_id).output == 9


def test_a_wait_whose_match_field_is_missing_from_the_trigger_fails_with_advice():
    app = App("t")
    app.workflow("w", trigger="go")(
        lambda ctx: ctx.step.wait_for_event("x", event="y", match="data.userId", timeout="1h")
    )
    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go", data={}))
        error = rt.run(run_id).error
        assert "has no data.userId" in error.message
