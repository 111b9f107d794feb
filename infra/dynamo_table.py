"""The DynamoDB table under `DynamoStore`: the client, error translation, and item encoding.

Everything about how records become items lives here: the key formats (`RUN#<run>`,
`STEP#<step key>`, ...), the run item's columns, and the step item's blob. Step items
are compare-and-set by their stored text (`r`): the `Revision` handed out with a step
record is that text, so items written before revisions existed need no migration. The
rest of the engine sees `StepKey`s, records and opaque revisions, never an item.

Error translation: a failed call becomes the engine's adapter-contract error, chosen by
error code (infra/aws_errors.py); no `ClientError` or `BotoCoreError` leaves the store.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from engine.errors import ItemTooLargeError, TableMissing, TransientError
from engine.ids import StepKey
from engine.model import EPOCH, CancelSubscription, Lease, RunRecord, StepRecord
from engine.ports import Revision, Stored
from infra.aws_errors import aws_error, error_code

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

    Item = dict[str, AttributeValueTypeDef]

T = TypeVar("T")

RUN_PREFIX = "RUN#"
RUN_SK = "RUN"
EVENT_SK = "EVENT"
STEP_PREFIX = "STEP#"
CANCEL_PREFIX = "CANCEL#"
# The events of a batched run, by position (`LoadedRun.batch`).
BATCH_PREFIX = "BEV#"
_RUN_ATTRIBUTES_IN_COLUMNS = {"status", "version", "wake_at", "lease"}
# The part of a lease that says who holds it; renewals are conditional on it.
_LEASE_IDENTITY = {"message_id", "receive_count", "holder"}
# Why a transaction was cancelled, when trying again later may succeed.
_TRANSIENT_CANCELLATIONS = {
    "TransactionConflict",
    "ProvisionedThroughputExceeded",
    "ThrottlingError",
}


def s(value: str) -> AttributeValueTypeDef:
    return {"S": value}


def n(value: int) -> AttributeValueTypeDef:
    return {"N": str(value)}


def micros(instant: datetime) -> int:
    delta = instant - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


def run_pk(run_id: str) -> AttributeValueTypeDef:
    return s(RUN_PREFIX + run_id)


def run_id_of(item: Item) -> str:
    return item["pk"]["S"].removeprefix(RUN_PREFIX)


def step_sk(key: StepKey) -> AttributeValueTypeDef:
    return s(f"{STEP_PREFIX}{key}")


def is_step(item: Item) -> bool:
    return item["sk"]["S"].startswith(STEP_PREFIX)


def lease_identity(lease: Lease) -> str:
    return lease.model_dump_json(include=_LEASE_IDENTITY)


def encode_step(record: StepRecord) -> str:
    """A step record's stored text: also its revision once written."""
    return record.model_dump_json(exclude_none=True, exclude_defaults=True)


class DynamoTable:
    """One table and a client for it; see the module docstring."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._client = client
        self._table = table

    # -- calls and error translation -----------------------------------------------------

    def _call(self, operation: Callable[..., T], **kwargs: Any) -> T:
        try:
            return operation(TableName=self._table, **kwargs)
        except (ClientError, BotoCoreError) as error:
            raise self._translate(error) from None

    def _translate(self, error: ClientError | BotoCoreError) -> Exception:
        """The engine's exception for a failed call, by type (see infra/aws_errors.py)."""
        if isinstance(error, ClientError):
            code = error_code(error)
            if code == "ResourceNotFoundException":
                return TableMissing(
                    f"DynamoDB table {self._table!r} does not exist (or the index is missing): "
                    "check STEPLINE_TABLE, the region, and that the stack is deployed"
                )
            if code == "TransactionCanceledException":
                reasons: list[dict[str, Any]] = error.response.get("CancellationReasons") or []  # type: ignore[assignment]
                codes = {reason.get("Code") for reason in reasons}
                if codes & _TRANSIENT_CANCELLATIONS:
                    return TransientError(
                        f"DynamoDB transaction cancelled: {sorted(map(str, codes))}"
                    )
                for reason in reasons:
                    message = str(reason.get("Message") or "")
                    if reason.get("Code") == "ValidationError" and "item size" in message.lower():
                        return ItemTooLargeError(
                            f"DynamoDB refused an item over its size limit: {message}"
                        )
        return aws_error(error, service="DynamoDB", resource=f"table {self._table!r}")

    def _query(self, index: str | None = None, **kwargs: Any) -> Iterator[Item]:
        if index is not None:
            kwargs["IndexName"] = index
        while True:
            page = self._call(self._client.query, **kwargs)
            yield from page.get("Items", [])
            last = page.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last

    # -- encoding ------------------------------------------------------------------------

    @staticmethod
    def _run_item(run: RunRecord) -> Item:
        item: Item = {
            "pk": run_pk(run.run_id),
            "sk": s(RUN_SK),
            "st": s(run.status.value),
            "v": n(run.version),
            "wf": s(run.workflow_id),
            "g2pk": s(f"RUNS#{run.created_at:%Y-%m}"),
            "g2sk": s(f"{run.created_at.isoformat()}#{run.run_id}"),
            "r": s(run.model_dump_json(exclude=_RUN_ATTRIBUTES_IN_COLUMNS, exclude_none=True)),
        }
        if run.wake_at is not None:
            item["wk"] = n(micros(run.wake_at))
        if run.lease is not None:
            item["ls"] = s(lease_identity(run.lease))
            item["lx"] = n(micros(run.lease.expires_at))
            if run.lease.current_step is not None:
                item["lr"] = s(run.lease.current_step.model_dump_json())
        return item

    @staticmethod
    def _run_from(item: Item) -> RunRecord:
        data = json.loads(item["r"]["S"])
        data["status"] = item["st"]["S"]
        data["version"] = int(item["v"]["N"])
        if "wk" in item:
            data["wake_at"] = from_micros(int(item["wk"]["N"]))
        if "ls" in item:
            lease = json.loads(item["ls"]["S"])
            lease["expires_at"] = from_micros(int(item["lx"]["N"]))
            if "lr" in item:
                lease["current_step"] = json.loads(item["lr"]["S"])
            data["lease"] = lease
        return RunRecord.model_validate(data)

    @staticmethod
    def _cancel_item(run_id: str, subscription: CancelSubscription) -> Item:
        return {
            "pk": run_pk(run_id),
            "sk": s(f"{CANCEL_PREFIX}{subscription.index:03d}"),
            "g1pk": s(subscription.index_key),
            "g1sk": s(run_id),
            "r": s(subscription.model_dump_json(exclude_none=True)),
        }

    @staticmethod
    def _step_item(run_id: str, record: StepRecord, text: str | None = None) -> Item:
        """The item of a step record; `text` is its stored form (encoded if not given)."""
        item: Item = {
            "pk": run_pk(run_id),
            "sk": step_sk(record.key),
            "r": s(encode_step(record) if text is None else text),
        }
        index_key = record.index_key
        if index_key is not None:
            item["g1pk"] = s(index_key)
            item["g1sk"] = s(f"{run_id}#{record.key}")
        return item

    @staticmethod
    def _stored_from(item: Item) -> Stored:
        text = item["r"]["S"]
        key = StepKey.parse(item["sk"]["S"].removeprefix(STEP_PREFIX))
        record = StepRecord.model_validate_json(text).model_copy(update={"key": key})
        return Stored(record, Revision(text))
