"""The flow-control items of the table: the `FlowStore` port (engine/flow/ports.py).

| item | pk | sk | attributes |
|---|---|---|---|
| a key's state (GCRA time, debounce, batch, singleton lock, idempotency claim) | `FLOW#<space>` | `STATE` | `v`, `r` |
| a concurrency slot | `FLOW#<space>#<i>` | `SLOT` | `v`, `r`, `run`, `claim`, `exp` |
| a run waiting for a slot | `FLOWQ#<space>` | `<place>#<run>` | `r`, `run` |
| the key's safety timer | `FLOWQ#<space>` | `~timer` | `v`, `r` |
| what a controlled workflow did with an event | `FLOWEV#<workflow>#<digest of the event id>` | `EVENT` | `r`, `ttl` |
| an event of a batched run | `RUN#<run>` | `BEV#<position>` | `r` (the event) |

`space` is a hash of the workflow (or app), the control and the key value
(engine/flow/keys.py), so every key has items of its own and any value fits a key. `r`
is the item's JSON; `run`, `claim` and `exp` (epoch µs) are copied out of it so that
conditions can read them; `xp` is the precise expiry (epoch µs) and `ttl` the same in
seconds, for DynamoDB's deletion of expired items (late: the engine reads `xp`).

`commit` of one change is one conditional PutItem or DeleteItem; of several, one
TransactWriteItems (whose idempotency token is a digest of its content, so botocore's
retry of a commit whose response was lost does not apply it twice). A refused
expectation comes back as `FlowConflict` with the failed changes' indexes (and, for a
run write, the stored run), never as a `ClientError`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from engine.errors import FlowConflict
from engine.flow.ports import (
    Absent,
    AddBatchEvent,
    AtVersion,
    Change,
    CreateRun,
    DeleteItem,
    Expect,
    FlowItem,
    HeldBy,
    ItemKey,
    PutItem,
    SetRunEvent,
    SlotFree,
    WriteRun,
)
from infra.dynamo_runs import subscription_keys
from infra.dynamo_table import (
    BATCH_PREFIX,
    EVENT_SK,
    DynamoTable,
    from_micros,
    micros,
    n,
    run_pk,
    s,
)
from infra.resources import TTL_ATTRIBUTE

if TYPE_CHECKING:
    from infra.dynamo_table import Item

# Data fields copied into attributes of their own, for conditions.
_HOISTED = ("run", "claim")
_NAMES = {"#run": "run", "#claim": "claim", "#exp": "exp", "#v": "v"}
_BATCH_GET = 100


def _key(key: ItemKey) -> Item:
    return {"pk": s(key.pk), "sk": s(key.sk)}


class FlowItems(DynamoTable):
    """The `FlowStore` port on the table."""

    # -- reading -------------------------------------------------------------------------

    def get_items(self, keys: Sequence[ItemKey]) -> dict[ItemKey, FlowItem]:
        found: dict[ItemKey, FlowItem] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), _BATCH_GET):
            chunk = unique[start : start + _BATCH_GET]
            if len(chunk) == 1:
                item = self._call(
                    self._client.get_item, Key=_key(chunk[0]), ConsistentRead=True
                ).get("Item")
                if item:
                    found[chunk[0]] = _flow_item(item)
                continue
            pending: dict[str, Any] = {
                self._table: {"Keys": [_key(key) for key in chunk], "ConsistentRead": True}
            }
            while pending:
                try:
                    response = self._client.batch_get_item(RequestItems=pending)
                except (ClientError, BotoCoreError) as error:
                    raise self._translate(error) from None
                for item in response.get("Responses", {}).get(self._table, []):
                    flow_item = _flow_item(item)
                    found[flow_item.key] = flow_item
                pending = dict(response.get("UnprocessedKeys") or {})
        return found

    def first_items(self, pk: str, *, limit: int) -> list[FlowItem]:
        page = self._call(
            self._client.query,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": s(pk)},
            ConsistentRead=True,
            Limit=limit,
        )
        return [_flow_item(item) for item in page.get("Items", [])]

    # -- writing -------------------------------------------------------------------------

    def commit(self, changes: Sequence[Change]) -> None:
        operations: list[tuple[int, str, dict[str, Any]]] = []
        for index, change in enumerate(changes):
            if isinstance(change, CreateRun):
                # Run listings read only the months that have runs (infra/dynamo_table.py).
                self.note_month(change.run.created_at)
            operations.extend((index, kind, body) for kind, body in self._operations(change))
        if len(operations) == 1:
            self._single(*operations[0])
            return
        items = [{kind: {"TableName": self._table, **body}} for _, kind, body in operations]
        token = hashlib.sha256(json.dumps(items, sort_keys=True).encode()).hexdigest()[:36]
        try:
            self._client.transact_write_items(
                TransactItems=items,  # type: ignore[arg-type]
                ClientRequestToken=token,
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "TransactionCanceledException":
                raise self._translate(error) from None
            reasons: list[dict[str, Any]] = error.response.get("CancellationReasons") or []  # type: ignore[assignment]
            failed: set[int] = set()
            runs: dict[int, Any] = {}
            for (index, _, _), reason in zip(operations, reasons, strict=False):
                code = reason.get("Code")
                if code in ("ConditionalCheckFailed", "TransactionConflict"):
                    failed.add(index)
                    old = reason.get("Item")
                    if isinstance(changes[index], WriteRun):
                        runs[index] = self._run_from(old) if old else None
            if not failed:
                raise self._translate(error) from None
            raise FlowConflict(tuple(sorted(failed)), runs) from None
        except BotoCoreError as error:
            raise self._translate(error) from None

    def _single(self, index: int, kind: str, body: dict[str, Any]) -> None:
        call = self._client.put_item if kind == "Put" else self._client.delete_item
        try:
            call(TableName=self._table, ReturnValuesOnConditionCheckFailure="ALL_OLD", **body)
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise self._translate(error) from None
            old: Item | None = error.response.get("Item")  # type: ignore[assignment]
            if kind == "Put" and old == body["Item"]:
                return  # our own write, committed by an attempt whose response was lost
            runs = {index: self._run_from(old) if old else None} if _is_run(body) else {}
            raise FlowConflict((index,), runs) from None
        except BotoCoreError as error:
            raise self._translate(error) from None

    def _operations(self, change: Change) -> list[tuple[str, dict[str, Any]]]:
        if isinstance(change, PutItem):
            return [("Put", {"Item": _item(change), **_condition(change.expect)})]
        if isinstance(change, DeleteItem):
            return [("Delete", {"Key": _key(change.key), **_condition(change.expect)})]
        if isinstance(change, CreateRun):
            run = change.run
            return [
                ("Put", {"Item": self._event_item(run.run_id, change.event)}),
                (
                    "Put",
                    {
                        "Item": self._run_item(run),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    },
                ),
                # Each cancel rule in the run's partition and its entry under its index key.
                *(
                    (
                        "Put",
                        {"Item": {**key, "r": s(subscription.model_dump_json(exclude_none=True))}},
                    )
                    for subscription in change.subscriptions
                    for key in subscription_keys(subscription)
                ),
            ]
        if isinstance(change, WriteRun):
            return [
                (
                    "Put",
                    {
                        "Item": self._run_item(change.run),
                        "ConditionExpression": "v = :expected",
                        "ExpressionAttributeValues": {":expected": n(change.expected_version)},
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    },
                )
            ]
        if isinstance(change, SetRunEvent):
            return [("Put", {"Item": self._event_item(change.run_id, change.event)})]
        assert isinstance(change, AddBatchEvent)
        return [
            (
                "Put",
                {
                    "Item": {
                        "pk": run_pk(change.run_id),
                        "sk": s(f"{BATCH_PREFIX}{change.position:05d}"),
                        "r": s(change.event.model_dump_json()),
                    }
                },
            )
        ]

    @staticmethod
    def _event_item(run_id: str, event: Any) -> Item:
        return {"pk": run_pk(run_id), "sk": s(EVENT_SK), "r": s(event.model_dump_json())}


def _is_run(body: dict[str, Any]) -> bool:
    return bool(body.get("Item", {}).get("sk", {}).get("S") == "RUN")


def _item(change: PutItem) -> Item:
    item: Item = {
        **_key(change.key),
        "v": n(change.version),
        "r": s(json.dumps(change.data, separators=(",", ":"), sort_keys=True)),
    }
    for name in _HOISTED:
        if name in change.data:
            item[name] = s(str(change.data[name]))
    if "exp" in change.data:
        item["exp"] = n(int(change.data["exp"]))
    if change.expires_at is not None:
        item["xp"] = n(micros(change.expires_at))
        # DynamoDB deletes expired items within days; reads go by `xp`.
        item[TTL_ATTRIBUTE] = n(int((change.expires_at + timedelta(seconds=1)).timestamp()))
    return item


def _condition(expect: Expect) -> dict[str, Any]:
    if expect is None:
        return {}
    if isinstance(expect, Absent):
        return {"ConditionExpression": "attribute_not_exists(pk)"}
    if isinstance(expect, AtVersion):
        return {
            "ConditionExpression": "#v = :v",
            "ExpressionAttributeNames": {"#v": "v"},
            "ExpressionAttributeValues": {":v": n(expect.version)},
        }
    if isinstance(expect, SlotFree):
        return {
            "ConditionExpression": "attribute_not_exists(pk) OR #exp <= :now OR #run = :run",
            "ExpressionAttributeNames": {"#exp": "exp", "#run": "run"},
            "ExpressionAttributeValues": {":now": n(micros(expect.now)), ":run": s(expect.run_id)},
        }
    assert isinstance(expect, HeldBy)
    parts, names, values = [], {}, {}
    if expect.claim is not None:
        parts.append("#claim = :claim")
        names["#claim"] = "claim"
        values[":claim"] = s(expect.claim)
    if expect.run_id is not None:
        parts.append("#run = :run")
        names["#run"] = "run"
        values[":run"] = s(expect.run_id)
    return {
        "ConditionExpression": " AND ".join(parts),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }


def _flow_item(item: Item) -> FlowItem:
    return FlowItem(
        key=ItemKey(item["pk"]["S"], item["sk"]["S"]),
        data=json.loads(item["r"]["S"]),
        version=int(item["v"]["N"]) if "v" in item else 0,
        expires_at=from_micros(int(item["xp"]["N"])) if "xp" in item else None,
    )
