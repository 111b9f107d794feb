"""Limits that fail only what is over them, with an error naming the limit (issue 10, item 11).

Everything that fits in an event or a step must fit in DynamoDB too: big things are
stored once, what is repeated is capped, and what goes into keys is hashed when it would
be too long for a key.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import replace
from datetime import timedelta

import pytest

from engine.model import (
    MAX_ATTEMPT_MESSAGE_BYTES,
    MAX_ERROR_MESSAGE_BYTES,
    MAX_RECORDED_FAILURES,
)
from infra.eventbridge import MAX_EVENT_ID_LENGTH, BadEventError
from infra.local import LocalRuntime
from sdk import App, CancelOn, Context, Event, Retry, StepError
from tests.conftest import START

BIG = "x" * 220_000  # an event of about 220 KB: well inside EventBridge's 256 KB


def put_event(rt: LocalRuntime, name: str, data: dict) -> str:
    response = rt.clients.events.put_events(
        Entries=[
            {
                "Source": "app",
                "DetailType": name,
                "Detail": json.dumps(data),
                "EventBusName": rt.settings.event_bus,
            }
        ]
    )
    assert response["FailedEntryCount"] == 0
    rt.drain()
    return response["Entries"][0]["EventId"]


def no_dead_letters(rt: LocalRuntime) -> bool:
    return all(rt.dead_letter_count(role) == 0 for role in ("events", "work"))


# -- a wait with if_: the trigger is stored once ---------------------------------------------


def test_a_wait_with_if_on_big_events_resolves_with_both_events_of_220_kb():
    app = App("t")

    @app.workflow("big-wait", trigger="doc/uploaded")
    def flow(ctx: Context) -> int | None:
        got = ctx.step.wait_for_event(
            "reviewed",
            event="doc/reviewed",
            match="data.doc",
            if_="async.data.rev > event.data.rev",
            timeout="1d",
        )
        return len(got.data["blob"]) if got else None

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="doc/uploaded", data={"doc": 1, "rev": 1, "blob": BIG}))
        assert rt.run(run_id).status == "WAITING"
        put_event(rt, "doc/reviewed", {"doc": 1, "rev": 2, "blob": BIG})
        assert rt.run(run_id).status == "COMPLETED"
        assert rt.run(run_id).output == len(BIG)
        assert no_dead_letters(rt)


def test_a_wait_with_if_finds_a_big_event_that_arrived_before_it_in_the_lookback():
    app = App("t")

    @app.workflow("late", trigger="doc/uploaded")
    def flow(ctx: Context) -> int | None:
        ctx.step.sleep("nap", "1m")
        got = ctx.step.wait_for_event(
            "reviewed",
            event="doc/reviewed",
            match="data.doc",
            if_="async.data.rev > event.data.rev",
            timeout="1d",
        )
        return got.data["rev"] if got else None

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="doc/uploaded", data={"doc": 1, "rev": 1, "blob": BIG}))
        put_event(rt, "doc/reviewed", {"doc": 1, "rev": 2, "blob": BIG})
        rt.advance(timedelta(minutes=2))
        assert rt.run(run_id).output == 2


def test_a_cancel_rule_with_if_keeps_its_index_item_small_and_still_cancels():
    app = App("t")

    @app.workflow(
        "drip",
        trigger="start",
        cancel_on=[CancelOn("stop", match="data.user", if_="async.data.v >= event.data.v")],
    )
    def flow(ctx: Context) -> str:
        ctx.step.sleep("nap", "1d")
        return "done"

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="start", data={"user": "u1", "v": 2, "blob": BIG}))
        items = rt.clients.dynamodb.query(
            TableName=rt.settings.table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :c)",
            ExpressionAttributeValues={":pk": {"S": f"RUN#{run_id}"}, ":c": {"S": "CANCEL#"}},
        )["Items"]
        [subscription] = items
        assert len(json.dumps(subscription)) < 2_000  # not the 220 KB trigger again
        rt.send(Event(name="stop", data={"user": "u1", "v": 1}))
        assert rt.run(run_id).status == "SLEEPING"
        rt.send(Event(name="stop", data={"user": "u1", "v": 3}))
        assert rt.run(run_id).status == "CANCELLED"


# -- retries: what is repeated is capped ------------------------------------------------------


def test_a_step_failing_with_huge_messages_reaches_its_compensation():
    app = App("t")
    calls = []

    def charge() -> None:
        calls.append(1)
        raise RuntimeError("card declined: " + "y" * 120_000)

    @app.workflow("pay", trigger="pay", retries=Retry(max_attempts=4, initial_delay="1s"))
    def flow(ctx: Context) -> dict:
        try:
            ctx.step.run("charge", charge)
        except StepError as error:
            ctx.step.run("refund", lambda: "refunded")
            return {"compensated": True, "message_bytes": len(error.error_message.encode())}
        return {"compensated": False}

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="pay", data={}))
        rt.advance(timedelta(minutes=5))
        run = rt.run(run_id)
        assert run.status == "COMPLETED", run.error
        assert run.output["compensated"] is True
        assert run.output["message_bytes"] <= MAX_ERROR_MESSAGE_BYTES
        assert len(calls) == 4
        [charge_step, _] = rt.history(run_id)
        assert charge_step.status == "FAILED"
        assert charge_step.error.message.startswith("card declined: yyy")
        assert "more bytes not kept" in charge_step.error.message
        assert [f.attempt for f in charge_step.failures] == [1, 2, 3]
        for failure in charge_step.failures:
            assert failure.error.traceback is None
            assert len(failure.error.message.encode()) <= MAX_ATTEMPT_MESSAGE_BYTES


def test_a_step_retried_many_times_keeps_only_its_last_failures():
    app = App("t")

    def flaky() -> None:
        raise RuntimeError("nope")

    attempts = MAX_RECORDED_FAILURES + 5

    @app.workflow(
        "flaky",
        trigger="go",
        retries=Retry(max_attempts=attempts, initial_delay="1s", max_delay="1s"),
    )
    def flow(ctx: Context) -> str:
        try:
            ctx.step.run("flaky", flaky)
        except StepError:
            return "gave up"
        return "ok"

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go", data={}))
        rt.advance(timedelta(days=1))
        assert rt.run(run_id).output == "gave up"
        [step] = rt.history(run_id)
        assert step.attempts == attempts
        assert len(step.failures) == MAX_RECORDED_FAILURES
        assert step.failures[-1].attempt == attempts - 1
        assert step.failures_dropped == attempts - 1 - MAX_RECORDED_FAILURES
        assert step.to_json()["failed_attempts_not_kept"] == step.failures_dropped


# -- match values and event ids in keys -------------------------------------------------------

LONG_USER = "u" * 3_000  # over DynamoDB's 2,048-byte key limit


def test_a_wait_on_a_3_kb_match_value_is_resolved_by_its_event():
    app = App("t")

    @app.workflow("verify", trigger="signup")
    def flow(ctx: Context) -> bool:
        got = ctx.step.wait_for_event(
            "verified", event="verified", match="data.userId", timeout="1d"
        )
        return got is not None

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="signup", data={"userId": LONG_USER}))
        assert rt.run(run_id).status == "WAITING"
        put_event(rt, "verified", {"userId": LONG_USER[:-1] + "v"})  # another user
        assert rt.run(run_id).status == "WAITING"
        put_event(rt, "verified", {"userId": LONG_USER})
        assert rt.run(run_id).status == "COMPLETED"
        assert rt.run(run_id).output is True
        assert no_dead_letters(rt)


def test_a_cancel_on_run_with_a_3_kb_match_value_is_created_and_can_be_cancelled():
    app = App("t")

    @app.workflow("drip", trigger="start", cancel_on=[CancelOn("stop", match="data.userId")])
    def flow(ctx: Context) -> str:
        ctx.step.sleep("nap", "1d")
        return "done"

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="start", data={"userId": LONG_USER}))
        assert rt.run(run_id).status == "SLEEPING"
        rt.send(Event(name="stop", data={"userId": LONG_USER}))
        assert rt.run(run_id).status == "CANCELLED"
        assert no_dead_letters(rt)


def test_waits_and_cancels_work_for_an_event_whose_id_is_over_1_kb_of_utf8():
    app = App("t")

    @app.workflow(
        "flow", trigger="start", cancel_on=[CancelOn("stop", match="data.user", if_="true")]
    )
    def flow(ctx: Context) -> str | None:
        got = ctx.step.wait_for_event("ok", event="ok", match="data.user", timeout="1d")
        ctx.step.sleep("nap", "1h")
        return got.id if got else None

    # 500 characters, 1,500 bytes of UTF-8: within the id limit, over a sort key's 1,024.
    long_id = "€" * 500
    with LocalRuntime(app, start=START) as rt:
        [a] = rt.send(Event(name="start", data={"user": "a"}))
        [b] = rt.send(Event(name="start", data={"user": "b"}))
        rt.send(Event(name="ok", data={"user": "a"}, id=long_id))
        assert rt.history(a)[0].output["id"] == long_id
        rt.send(Event(name="stop", data={"user": "b"}, id=long_id + "!"))
        assert rt.run(b).status == "CANCELLED"
        rt.advance(timedelta(hours=2))
        assert rt.run(a).output == long_id
        assert no_dead_letters(rt)


def test_an_event_id_over_the_limit_is_refused_naming_the_limit():
    app = App("t")
    app.workflow("w", trigger="go")(lambda ctx: "ran")
    too_long = "i" * (MAX_EVENT_ID_LENGTH + 1)
    with LocalRuntime(app, start=START) as rt:
        with pytest.raises(BadEventError, match=f"the limit is {MAX_EVENT_ID_LENGTH}"):
            rt.send(Event(name="go", data={}, id=too_long))
        # From a plain put_events the handlers refuse it the same way; other events flow.
        put_event(rt, "go", {"$stepline": {"id": too_long}})
        assert rt.runs() == []
        assert rt.dead_letter_count("events") == 1
        [run_id] = rt.send(Event(name="go", data={}, id="i" * MAX_EVENT_ID_LENGTH))
        assert rt.run(run_id).output == "ran"


# -- the exclusions of a wait do not grow with the run ---------------------------------------


def test_a_waits_exclusions_hold_only_events_at_its_lookback_start():
    app = App("t")

    @app.workflow("approvals", trigger="doc/submitted")
    def flow(ctx: Context) -> int:
        seen = 0
        for _ in range(6):
            got = ctx.step.wait_for_event(
                "approval", event="approved", match="data.doc", timeout="1d"
            )
            seen += got is not None
        return seen

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="doc/submitted", data={"doc": 1}))
        for _ in range(5):
            rt.advance(timedelta(minutes=1))
            put_event(rt, "approved", {"doc": 1})
        loaded = rt.services.store.load(run_id)
        last = loaded.steps[max(loaded.steps)]
        assert last.wait is not None and len(last.wait.exclude) <= 2
        rt.advance(timedelta(minutes=1))
        put_event(rt, "approved", {"doc": 1})
        assert rt.run(run_id).output == 6


# -- what is still too large fails alone, naming the limit ------------------------------------


def test_a_step_record_dynamodb_refuses_fails_the_step_not_the_message():
    app = App("t")

    @app.workflow("huge", trigger="go")
    def flow(ctx: Context) -> str:
        try:
            # Random text: compression (records over 1 KB are stored compressed) cannot
            # bring it under the item limit.
            ctx.step.run("huge", lambda: base64.b64encode(os.urandom(600_000)).decode())
        except StepError as error:
            return f"caught {error.error_type}"
        return "stored"

    with LocalRuntime(app, start=START) as rt:
        # Allow outputs past what a DynamoDB item can hold, so the store is what refuses.
        rt.services.runner.settings = replace(rt.services.runner.settings, max_output_bytes=10**6)
        [run_id] = rt.send(Event(name="go", data={}))
        assert rt.run(run_id).output == "caught ItemTooLargeError"
        [step] = rt.history(run_id)
        assert step.status == "FAILED"
        assert "400 KB item size limit" in step.error.message
        assert no_dead_letters(rt)


def test_a_run_item_dynamodb_refuses_fails_the_run_not_the_message():
    app = App("t")
    app.workflow("huge", trigger="go")(lambda ctx: "z" * 420_000)

    with LocalRuntime(app, start=START) as rt:
        rt.services.runner.settings = replace(rt.services.runner.settings, max_output_bytes=10**6)
        [run_id] = rt.send(Event(name="go", data={}))
        run = rt.run(run_id)
        assert run.status == "FAILED"
        assert run.error.type == "ItemTooLargeError"
        assert "400 KB item size limit" in run.error.message
        assert no_dead_letters(rt)
