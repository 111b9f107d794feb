"""Throttling: DynamoDB, SQS, EventBridge and Scheduler refuse 5-20% of calls.

Errors are injected at the HTTP layer as real AWS error responses, so botocore's own
retry logic (standard mode, exponential backoff with jitter) handles them exactly as on
AWS. Whatever outlasts those retries fails the message, which SQS redelivers. Two kinds:

- throttled: the service refused the request; nothing was applied;
- response lost: the request was applied, but the caller got a 5xx (a timeout after the
  commit). The retry then meets its own write, which must count as success.

Nothing may be lost or done twice.
"""

from __future__ import annotations

import random
import threading
from collections import Counter

import botocore.endpoint
import pytest
from botocore.awsrequest import AWSResponse

from tests.reliability.figures import add, full_size
from tests.reliability.scenarios import SCENARIOS, Scenario, execute
from tests.reliability.test_crash_matrix import baseline, duplicate_steps

THROTTLED = {
    "dynamodb": (
        400,
        b'{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",'
        b'"message":"The level of configured provisioned throughput for the table was exceeded."}',
    ),
    "sqs": (400, b'{"__type":"com.amazonaws.sqs#ThrottlingException","message":"Rate exceeded"}'),
    "events": (400, b'{"__type":"ThrottlingException","message":"Rate exceeded"}'),
    "scheduler": (429, b'{"Message":"Rate exceeded"}'),
}
LOST = (500, b'{"__type":"InternalServerError","message":"response lost after the commit"}')
SKIP_HEADER = "x-stepline-test-refused"
ERROR_HEADERS = {
    "x-amzn-ErrorType": "ThrottlingException",
    "x-amzn-query-error": "ThrottlingException;Sender",
}


class _Body:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: object):
        yield self._body

    def read(self) -> bytes:
        return self._body


class Throttler:
    """Fails a fraction of each client's requests: refused, or applied with the response lost."""

    def __init__(self, rate: float, seed: int, *, applied: bool) -> None:
        self.rate = rate
        self.applied = applied
        self.random = random.Random(seed)
        self.injected: Counter[str] = Counter()
        self._lock = threading.Lock()

    def attach(self, clients) -> None:
        for service in THROTTLED:
            client = getattr(clients, service)
            name = client.meta.service_model.service_name
            client.meta.events.register_first(f"before-send.{name}", self._hook(service))

    def _hook(self, service: str):
        status, body = LOST if self.applied else THROTTLED[service]

        def hook(request, **_: object):
            with self._lock:
                fail = self.random.random() < self.rate
                if fail:
                    self.injected[service] += 1
            # botocore reuses the request object between attempts: start each one clean.
            if SKIP_HEADER in request.headers:
                del request.headers[SKIP_HEADER]
            if not fail:
                return None
            if not self.applied:
                # moto's stub runs after this hook on the same request: tell it to skip.
                request.headers[SKIP_HEADER] = "1"
            return AWSResponse(request.url, status, ERROR_HEADERS, _Body(body))

        return hook


@pytest.fixture(autouse=True)
def moto_skips_refused_requests(monkeypatch):
    """A refused request must not be applied, as AWS would not apply it."""
    from moto.core.botocore_stubber import BotocoreStubber

    original = BotocoreStubber.__call__

    def call(self, event_name, request, **kwargs):
        if request.headers.get(SKIP_HEADER):
            return None
        return original(self, event_name, request, **kwargs)

    monkeypatch.setattr(BotocoreStubber, "__call__", call)


@pytest.fixture
def virtual_backoff(monkeypatch):
    """botocore sleeps between retries; record the delays instead of waiting them out."""
    delays: list[float] = []
    monkeypatch.setattr(botocore.endpoint.time, "sleep", delays.append)
    return delays


@pytest.mark.parametrize("applied", [False, True], ids=["throttled", "response-lost"])
@pytest.mark.parametrize("rate", [0.05, 0.2] if not full_size() else [0.05, 0.1, 0.2])
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_refused_calls_are_retried_with_backoff_and_nothing_is_lost_or_doubled(
    scenario: Scenario, rate, applied, virtual_backoff
):
    expected, expected_effects = baseline(scenario.name)
    seed = sum(map(ord, scenario.name)) + int(rate * 100) + applied
    throttler = Throttler(rate, seed=seed, applied=applied)
    state, effects, _ = execute(scenario, on_start=lambda rt: throttler.attach(rt.services.clients))
    add("scenarios run")
    add("throttling errors injected", sum(throttler.injected.values()))
    add("runs checked", len(expected))
    add("runs lost", len(set(expected) - set(state)))
    assert sum(throttler.injected.values()) > 0
    assert state == expected
    assert duplicate_steps(state) == 0
    missing = {key: n for key, n in expected_effects.items() if effects[key] < n}
    assert not missing, f"side effects lost: {missing}"
    # Every retry waited first (exponential backoff with jitter) rather than hammering.
    assert virtual_backoff and all(delay > 0 for delay in virtual_backoff)
