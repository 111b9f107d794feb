"""Shared fixtures: a fixed virtual start time, side-effect counters, AWS request counters."""

from __future__ import annotations

import collections
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

# Never reach real AWS from a test, whatever the developer's shell has configured.
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
for _variable in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
    os.environ.pop(_variable, None)

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class SideEffects:
    """Counts calls of the functions steps run, by name (thread-safe)."""

    def __init__(self) -> None:
        self.calls: collections.Counter[str] = collections.Counter()
        self.log: list[tuple[str, tuple[Any, ...]]] = []
        self._lock = threading.Lock()

    def record(self, name: str, *args: Any) -> None:
        with self._lock:
            self.calls[name] += 1
            self.log.append((name, args))

    def __getitem__(self, name: str) -> int:
        return self.calls[name]


@pytest.fixture
def effects() -> SideEffects:
    return SideEffects()


WRITE_OPERATIONS = {
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "TransactWriteItems",
    "BatchWriteItem",
}
READ_OPERATIONS = {"GetItem", "Query", "BatchGetItem", "Scan", "TransactGetItems"}


class RequestCounter:
    """Counts AWS requests made by a runtime's service clients (botocore event hooks)."""

    def __init__(self) -> None:
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()
        self.enabled = True

    def attach(self, clients: Any) -> RequestCounter:
        for service in ("dynamodb", "sqs", "scheduler", "events"):
            client = getattr(clients, service)
            client.meta.events.register("before-call.*.*", self._hook)
        return self

    def _hook(self, model: Any, **_: Any) -> None:
        if self.enabled:
            self.counts[(model.service_model.service_name, model.name)] += 1

    def reset(self) -> None:
        self.counts.clear()

    def total(self, service: str, operations: set[str] | None = None) -> int:
        return sum(
            count
            for (svc, operation), count in self.counts.items()
            if svc == service and (operations is None or operation in operations)
        )

    @property
    def dynamodb_writes(self) -> int:
        return self.total("dynamodb", WRITE_OPERATIONS)

    @property
    def dynamodb_reads(self) -> int:
        return self.total("dynamodb", READ_OPERATIONS)

    @property
    def sqs_sends(self) -> int:
        return self.total("sqs", {"SendMessage", "SendMessageBatch"})


@pytest.fixture
def requests_of() -> Callable[[Any], RequestCounter]:
    def attach(runtime: Any) -> RequestCounter:
        return RequestCounter().attach(runtime.services.clients)

    return attach


@pytest.fixture
def atomic_aws_requests(monkeypatch):
    """Make each mocked AWS request atomic, as DynamoDB's conditional writes are.

    moto's in-process backend checks a condition and then writes without a lock, so
    threads racing on one item can both pass the check; moto's server mode, like AWS,
    does not allow that. Tests that race threads on purpose use this fixture.
    """
    from moto.core.botocore_stubber import BotocoreStubber

    original = BotocoreStubber.__call__
    lock = threading.RLock()

    def call(self, *args, **kwargs):
        with lock:
            return original(self, *args, **kwargs)

    monkeypatch.setattr(BotocoreStubber, "__call__", call)
