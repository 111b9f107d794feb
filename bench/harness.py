"""What the figures share: a moto runtime, direct engine invocations, request metering.

Everything runs on in-process moto (`infra.local.LocalRuntime`). The engine is invoked
through its real Lambda handler (`handlers.engine.handler`) with a Lambda-shaped SQS
event built here, so a timed invocation is exactly what a Lambda invocation would run:
the batch plumbing, the load Query, the claim, the replay, the step writes, the final
run write and the side effects. Nothing of the engine is bypassed; only SQS's receive is
left out of the timed part (Lambda's poller does it outside the function).
"""

from __future__ import annotations

import collections
import gc
import math
import re
import statistics
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from engine.ids import run_id_for
from engine.model import RunRecord, RunStatus, WorkMessage
from infra.local import LocalRuntime
from infra.resources import TABLE_DEFINITION
from sdk import App, Event

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# -- invoking the engine ---------------------------------------------------------------


@dataclass
class _Context:
    """The part of the Lambda context the handlers read."""

    timeout_s: float = 900.0
    started: float = field(default_factory=time.monotonic)
    function_name: str = "stepline-engine"
    aws_request_id: str = "bench"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:bench"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_s - (time.monotonic() - self.started)) * 1000))


def work_event(run_id: str, reason: str = "start") -> dict[str, Any]:
    """The SQS event Lambda would hand the engine for one work message."""
    body = WorkMessage(run_id=run_id, reason=reason).model_dump_json(exclude_none=True)
    return {
        "Records": [
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": "bench",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:stepline-work",
                "awsRegion": "us-east-1",
            }
        ]
    }


def create_run(rt: LocalRuntime, workflow_id: str, data: dict[str, Any] | None = None) -> str:
    """A QUEUED run written straight to the table (no SQS message: we invoke directly)."""
    now = rt.clock.now()
    event = Event(name="bench/start", data=data or {}, id=str(uuid.uuid4()), ts=now)
    run_id = run_id_for(workflow_id, event.id)
    run = RunRecord(
        run_id=run_id,
        workflow_id=workflow_id,
        status=RunStatus.QUEUED,
        created_at=now,
        updated_at=now,
        event_id=event.id,
        event_name=event.name,
        event_ts=now,
    )
    rt.services.store.create_run(run, event, [])
    return run_id


def settle() -> None:
    """Collect garbage before a timed section, so that no side pays for the other's."""
    gc.collect()


def invoke_engine(rt: LocalRuntime, run_id: str, reason: str = "start") -> float:
    """Run the engine's Lambda handler on one work message; returns its wall time (s)."""
    from handlers import engine

    event = work_event(run_id, reason)
    context = _Context()
    settle()
    started = time.perf_counter()
    response = engine.handler(event, context, services=rt.services)
    elapsed = time.perf_counter() - started
    if response.get("batchItemFailures"):
        raise RuntimeError(f"the engine failed the message for run {run_id}: {response}")
    return elapsed


@contextmanager
def runtime(app: App, **kwargs: Any) -> Iterator[LocalRuntime]:
    with LocalRuntime(app, start=START, **kwargs) as rt:
        # LocalRuntime's clock is virtual, monotonic seconds included, and does not move
        # while an invocation runs. A deployed engine paces its step gate (how often a
        # running invocation looks at its run item for a cancel) by real time: measure that.
        rt.clock.monotonic = time.monotonic  # type: ignore[method-assign]
        yield rt


def inline_app(steps: int, name: str = "inline") -> App:
    """One workflow of `steps` inline steps, each returning a small dict."""
    app = App("bench")

    @app.workflow(name, trigger="bench/inline")
    def flow(ctx: Any) -> int:
        for index in range(steps):
            ctx.step.run(f"step-{index}", _small_output, index)
        return steps

    return app


def _small_output(index: int) -> dict[str, Any]:
    return {"index": index, "ok": True}


# -- DynamoDB capacity units ---------------------------------------------------------------

KB = 1024
GSI_OVERHEAD = 100  # bytes DynamoDB adds to each index item


def attribute_size(value: dict[str, Any]) -> int:
    """DynamoDB's size of one attribute value (type descriptor form)."""
    [(kind, inner)] = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        digits = len(inner.lstrip("-").replace(".", "").lstrip("0")) or 1
        return math.ceil(digits / 2) + 1
    if kind == "B":
        return len(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(item.encode()) for item in inner)
    if kind == "NS":
        return sum(attribute_size({"N": item}) for item in inner)
    if kind == "L":
        return 3 + sum(attribute_size(item) + 1 for item in inner)
    if kind == "M":
        return 3 + sum(len(k.encode()) + attribute_size(v) + 1 for k, v in inner.items())
    return len(str(inner))


def item_size(item: dict[str, Any]) -> int:
    return sum(len(name.encode()) + attribute_size(value) for name, value in item.items())


def _indexes() -> dict[str, tuple[str, str | None, str]]:
    """The table's indexes as infra/resources.py defines them: name -> (hash attribute,
    range attribute, projection). Read from the definition, so a layout change is seen."""
    out: dict[str, tuple[str, str | None, str]] = {}
    for index in TABLE_DEFINITION.get("GlobalSecondaryIndexes", []):
        keys = {k["KeyType"]: k["AttributeName"] for k in index["KeySchema"]}
        out[index["IndexName"]] = (
            keys["HASH"],
            keys.get("RANGE"),
            index["Projection"]["ProjectionType"],
        )
    return out


_INDEXES = _indexes()
_TABLE_HASH = next(
    k["AttributeName"] for k in TABLE_DEFINITION["KeySchema"] if k["KeyType"] == "HASH"
)
_TABLE_RANGE = next(
    (k["AttributeName"] for k in TABLE_DEFINITION["KeySchema"] if k["KeyType"] == "RANGE"), None
)


def _key_value(value: dict[str, Any] | None) -> str:
    if not value:
        return ""
    [(_, inner)] = value.items()
    return str(inner)


def _index_units(old: dict[str, Any] | None, new: dict[str, Any] | None) -> float:
    """Write units the indexes cost when an item goes from `old` to `new`."""
    return sum(units for _, _, units in _index_writes(old, new))


def _index_writes(
    old: dict[str, Any] | None, new: dict[str, Any] | None
) -> list[tuple[str, str, float]]:
    """(index, index partition key value, write units) of each index write the change
    of an item from `old` to `new` causes."""
    writes: list[tuple[str, str, float]] = []
    for index_name, (hash_key, range_key, projection) in _INDEXES.items():
        before = old is not None and hash_key in old
        after = new is not None and hash_key in new
        if not before and not after:
            continue
        keys_changed = (
            before != after
            or old is None
            or new is None
            or old.get(hash_key) != new.get(hash_key)
            or (range_key is not None and old.get(range_key) != new.get(range_key))
        )
        if projection == "KEYS_ONLY" and not keys_changed:
            continue
        if projection != "KEYS_ONLY" and not keys_changed and old == new:
            continue
        size = item_size(new if after and new is not None else old or {}) + GSI_OVERHEAD
        units = float(math.ceil(size / KB))
        # A key change is a delete of the old index item plus a put of the new one.
        if before and after and keys_changed:
            assert old is not None and new is not None
            writes.append((index_name, _key_value(old.get(hash_key)), units))
            writes.append((index_name, _key_value(new.get(hash_key)), units))
        elif after:
            assert new is not None
            writes.append((index_name, _key_value(new.get(hash_key)), units))
        else:
            assert old is not None
            writes.append((index_name, _key_value(old.get(hash_key)), units))
    return writes


def _query_key(params: dict[str, Any]) -> str:
    """The partition key value a Query's KeyConditionExpression names."""
    names = params.get("ExpressionAttributeNames", {})
    values = params.get("ExpressionAttributeValues", {})
    index = params.get("IndexName")
    hash_key = _INDEXES[index][0] if index in _INDEXES else _TABLE_HASH
    for left, right in re.findall(
        r"([#\w]+)\s*=\s*(:\w+)", params.get("KeyConditionExpression", "")
    ):
        if names.get(left, left) == hash_key:
            return _key_value(values.get(right))
    return "(unknown)"


class RequestMeter:
    """Counts AWS requests and DynamoDB capacity units with botocore event hooks.

    Requests are counted on `before-call`, as tests/conftest.py does. Capacity units
    are modelled from the request parameters and responses: a write costs 1 WCU per KB
    of the larger of the old and new item (rounded up), twice that inside a
    transaction, plus the index writes its change causes; a strongly consistent read
    costs 1 RCU per 4 KB of everything it returns (rounded up, at least 1), an
    eventually consistent one (the indexes) half that. A shadow of every item written
    through the meter supplies the old images; an update's new image is read from moto's
    memory (no request). Every unit is also charged to the partition key it touches
    (`by_key`: the base table's or an index's), and to the `tag` a driver set.
    """

    def __init__(self) -> None:
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()
        self.wcu = 0.0
        self.rcu = 0.0
        self.enabled = True
        self._items: dict[tuple[str, str], dict[str, Any]] = {}
        #: Units by (kind "write"/"read", "table" or an index name, partition key value).
        self.by_key: collections.Counter[tuple[str, str, str]] = collections.Counter()
        #: The `tag`s (operations of a sample) that touched each of those keys.
        self.tags_by_key: dict[tuple[str, str, str], set[object]] = collections.defaultdict(set)
        #: Set by a driver to the operation it is running; None: not counted per key.
        self.tag: object = None
        self._region = "us-east-1"

    def attach(
        self, clients: Any, services: tuple[str, ...] = ("dynamodb", "sqs", "scheduler", "events")
    ) -> RequestMeter:
        self._region = clients.dynamodb.meta.region_name
        for service in services:
            events = getattr(clients, service).meta.events
            events.register("before-parameter-build.*.*", self._params_hook)
            events.register("before-call.*.*", self._count_hook)
            events.register("after-call.*.*", self._response_hook)
        return self

    def reset(self) -> None:
        self.counts.clear()
        self.wcu = self.rcu = 0.0
        self.by_key.clear()
        self.tags_by_key.clear()

    def total(self, service: str, operations: set[str] | None = None) -> int:
        return sum(
            count
            for (svc, operation), count in self.counts.items()
            if svc == service and (operations is None or operation in operations)
        )

    def _charge(self, kind: str, where: str, key: str, units: float) -> None:
        if kind == "write":
            self.wcu += units
        else:
            self.rcu += units
        self.by_key[(kind, where, key)] += units
        if self.tag is not None:
            self.tags_by_key[(kind, where, key)].add(self.tag)

    # -- hooks -----------------------------------------------------------------------------

    def _params_hook(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["bench_params"] = dict(params)

    def _count_hook(self, model: Any, **_: Any) -> None:
        if self.enabled:
            self.counts[(model.service_model.service_name, model.name)] += 1

    def _response_hook(
        self, model: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any
    ) -> None:
        if model.service_model.service_name != "dynamodb" or "bench_params" not in context:
            return
        name, params = model.name, context["bench_params"]
        failed = "Error" in parsed
        enabled = self.enabled
        if name == "PutItem":
            self._write(params["Item"], failed, enabled)
        elif name == "UpdateItem":
            self._update(params, failed, enabled)
        elif name == "DeleteItem":
            self._write(None, failed, enabled, key=params["Key"])
        elif name == "BatchWriteItem":
            for requests in params["RequestItems"].values():
                for request in requests:
                    if "PutRequest" in request:
                        self._write(request["PutRequest"]["Item"], False, enabled)
                    else:
                        self._write(None, False, enabled, key=request["DeleteRequest"]["Key"])
        elif name == "TransactWriteItems":
            for entry in params["TransactItems"]:
                if "Put" in entry:
                    self._write(entry["Put"]["Item"], failed, enabled, factor=2)
                elif "Delete" in entry:
                    self._write(None, failed, enabled, key=entry["Delete"]["Key"], factor=2)
                elif "Update" in entry:
                    self._update(entry["Update"], failed, enabled, factor=2)
                elif enabled:
                    check = entry.get("ConditionCheck", {}).get("Key", {})
                    self._charge("write", "table", _key_value(check.get(_TABLE_HASH)), 2)
        elif name in ("Query", "Scan"):
            consistent = bool(params.get("ConsistentRead")) and "IndexName" not in params
            size = sum(item_size(item) for item in parsed.get("Items", []))
            if enabled:
                self._charge(
                    "read",
                    params.get("IndexName", "table"),
                    _query_key(params) if name == "Query" else "(scan)",
                    max(1, math.ceil(size / (4 * KB))) * (1 if consistent else 0.5),
                )
        elif name == "GetItem":
            size = item_size(parsed.get("Item", {}))
            if enabled:
                self._charge(
                    "read",
                    "table",
                    _key_value(params["Key"].get(_TABLE_HASH)),
                    max(1, math.ceil(size / (4 * KB)))
                    * (1 if params.get("ConsistentRead") else 0.5),
                )
        elif name == "BatchGetItem":
            for items in parsed.get("Responses", {}).values():
                for item in items:
                    if enabled:
                        self._charge(
                            "read",
                            "table",
                            _key_value(item.get(_TABLE_HASH)),
                            max(1, math.ceil(item_size(item) / (4 * KB))),
                        )

    def _write(
        self,
        new: dict[str, Any] | None,
        failed: bool,
        enabled: bool,
        *,
        key: dict[str, Any] | None = None,
        factor: int = 1,
    ) -> None:
        source = new if new is not None else key or {}
        ident = (source["pk"]["S"], source["sk"]["S"])
        old = self._items.get(ident)
        size = max(item_size(new or {}), item_size(old or {}))
        if enabled:
            # A failed conditional write still consumes the units of the item it checked.
            self._charge("write", "table", ident[0], max(1, math.ceil(size / KB)) * factor)
            if not failed:
                for index, index_key, units in _index_writes(old, new):
                    self._charge("write", index, index_key, units * factor)
        if failed:
            return
        if new is None:
            self._items.pop(ident, None)
        else:
            self._items[ident] = new

    def _update(
        self, params: dict[str, Any], failed: bool, enabled: bool, *, factor: int = 1
    ) -> None:
        key = params["Key"]
        ident = (key["pk"]["S"], key["sk"]["S"])
        old = self._items.get(ident)
        new = None if failed else self._stored_item(params.get("TableName", ""), key)
        if enabled:
            size = max(item_size(old or {}), item_size(new or {}))
            self._charge("write", "table", ident[0], max(1, math.ceil(size / KB)) * factor)
            if new is not None:
                for index, index_key, units in _index_writes(old, new):
                    self._charge("write", index, index_key, units * factor)
        if new is not None:
            self._items[ident] = new

    def _stored_item(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        """The item as moto now holds it (an update's new image), read from moto's
        backend in process: no request. None off moto or when it is gone."""
        try:
            from moto.core import DEFAULT_ACCOUNT_ID
            from moto.dynamodb.models import dynamodb_backends

            item = dynamodb_backends[DEFAULT_ACCOUNT_ID][self._region].get_item(table, key)
        except Exception:
            return None
        if item is None:
            return None
        attributes: dict[str, Any] = item.to_json()["Attributes"]
        return attributes
