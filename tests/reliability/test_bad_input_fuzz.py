"""Fuzzed records into every handler: malformed JSON, wrong types, missing fields, huge
payloads, unicode, unknown names. No batch may crash; each bad record is reported (and
logged) on its own; the good record behind the bad ones is processed."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from examples import app as shop
from infra.lambda_functions import BY_QUEUE
from infra.local import LocalRuntime, lambda_service
from infra.resources import MAX_RECEIVE_COUNT
from sdk import Event
from tests.conftest import START
from tests.reliability.figures import add, full_size

EXAMPLES = 300 if full_size() else 40

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
names = st.sampled_from(
    ["user/signup", "app/user.deleted", "app/user.profile.completed", "nobody/listens"]
) | st.text(min_size=0, max_size=300)
envelopes = st.fixed_dictionaries(
    {},
    optional={
        "id": st.text(max_size=40) | st.integers() | st.none(),
        "detail-type": names | st.integers() | st.none() | json_values,
        "detail": st.dictionaries(st.text(max_size=10), json_values, max_size=5) | json_values,
        "time": st.text(max_size=30) | st.integers() | st.just("2026-03-02T09:00:00Z"),
        "source": st.text(max_size=20),
    },
)
huge = st.builds(
    lambda size: json.dumps(
        {"id": "huge", "detail-type": "user/signup", "detail": {"userId": "x" * size}}
    ),
    st.integers(min_value=200_000, max_value=300_000),
)
event_bodies = (
    st.text(max_size=200)
    | json_values.map(json.dumps)
    | envelopes.map(json.dumps)
    | st.binary(max_size=50).map(lambda b: b.decode("latin-1"))
    | huge
)
work_bodies = (
    st.text(max_size=100)
    | json_values.map(json.dumps)
    | st.fixed_dictionaries(
        {},
        optional={
            "run_id": st.text(max_size=60) | st.integers() | st.none(),
            "reason": st.sampled_from(["start", "timer", "event", "continue", "child", "cancel"])
            | st.text(max_size=10),
            "at": st.text(max_size=30) | st.just("2026-03-02T09:00:00+00:00") | st.integers(),
        },
    ).map(json.dumps)
)


def good_body(role: str) -> str:
    if role == "work":
        return json.dumps({"run_id": "no-such-run", "reason": "timer"})
    return json.dumps(
        {
            "id": "good-event",
            "detail-type": "user/signup",
            "time": "2026-03-02T09:00:00Z",
            "detail": {"userId": "fuzz-good"},
        }
    )


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    with LocalRuntime(shop, start=START) as rt:
        yield rt


def records(bodies: list[str]) -> list[dict]:
    return [
        {
            "MessageId": f"m{index}",
            "ReceiptHandle": f"r{index}",
            "Body": body,
            "Attributes": {"ApproximateReceiveCount": "1"},
        }
        for index, body in enumerate(bodies)
    ]


@pytest.mark.parametrize("role", ["events", "work"])
def test_fuzzed_records_never_crash_a_batch_and_never_block_the_good_one(runtime, role, caplog):
    handler = BY_QUEUE[role]
    strategy = work_bodies if role == "work" else event_bodies

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(bad=st.lists(strategy, min_size=1, max_size=9))
    def check(bad: list[str]) -> None:
        caplog.clear()
        batch = [*bad, good_body(role)]
        event = lambda_service.lambda_sqs_event(
            records(batch), queue_arn=f"arn:aws:sqs:us-east-1:1:{role}"
        )
        context = lambda_service.FakeLambdaContext(role, timedelta(minutes=1), 0)
        add("bad inputs tried", len(bad))
        add("batches crashed", 0)
        try:
            response = handler(event, context, services=runtime.services)
        except BaseException:
            add("batches crashed")
            raise
        failed = {item["itemIdentifier"] for item in response["batchItemFailures"]}
        # The good record, last in the batch, was processed despite what came before.
        assert f"m{len(bad)}" not in failed
        # Each refused record has its own log line naming it.
        for message_id in failed:
            assert any(message_id in record.getMessage() for record in caplog.records), message_id
        # Payloads never reach the log at INFO or above.
        for record in caplog.records:
            if record.levelno >= logging.INFO:
                assert "x" * 1000 not in record.getMessage()

    with caplog.at_level(logging.INFO, "stepline"):
        check()


def test_fuzzed_poison_messages_reach_the_dlq_after_max_receives_without_blocking(runtime):
    poison = [
        "{",
        "[]",
        json.dumps({"detail-type": 5}),
        json.dumps({"id": "p", "detail-type": "x", "detail": 7}),
    ]
    sqs = runtime.clients.sqs
    for body in poison:
        sqs.send_message(QueueUrl=runtime.queue_urls["events"], MessageBody=body)
    [run_id] = runtime.send(Event(name="user/signup", data={"userId": "behind-the-poison"}))
    runtime.drain()
    add("bad inputs tried", len(poison))
    assert runtime.run(run_id).status == "SLEEPING"
    assert runtime.dead_letter_count("events") >= len(poison)
    assert runtime.deliveries["events"] <= 1 + len(poison) * MAX_RECEIVE_COUNT
