"""The DynamoDB table under `DynamoStore`: the client, error translation, and item encoding.

Everything about how records become items lives here: the key formats (`RUN#<run>`,
`STEP#<step key>`, ...), the run item's columns, and the step item's blob: JSON text in
`r`, or, over `COMPRESS_OVER` bytes, zlib-compressed JSON in `z` (so a record with a
~1 KB output costs one write unit). Step items are compare-and-set by their stored value:
the `Revision` handed out with a step record is that value, exactly as read or written
(never re-encoded, which a different zlib could do differently), so items written
before revisions existed need no migration. The
rest of the engine sees `StepKey`s, records and opaque revisions, never an item.

Error translation: a failed call becomes the engine's adapter-contract error, chosen by
error code (infra/aws_errors.py); no `ClientError` or `BotoCoreError` leaves the store.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from engine.errors import ItemTooLargeError, TableMissing, TransientError
from engine.ids import MAX_PARTITION_KEY_BYTES, StepKey, is_shared_key
from engine.model import EPOCH, Lease, RunRecord, StepRecord
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

# -- spreading load over partitions ----------------------------------------------------
# DynamoDB serves about 1,000 write units and 3,000 read units a second per partition key.
# A key that every run of a workflow, every event of a name or every run of a month would
# write is split into SHARDS keys, chosen by a hash of the run id or event id, so 10,000
# run starts or events a second of one name put about 625 a second on each. Readers of
# such a key read every shard (a run listing merges them, newest first).
SHARDS = 16
# The wait paths of an event name are read by every event of that name and written once
# per process per new path: kept as PATH_COPIES identical items, each event reading one.
PATH_COPIES = 8
# Events of a name some wait without `match` uses are also kept under that wait's key, in
# a grid of GRID_ROWS x GRID_COLUMNS keys: an event writes the GRID_COLUMNS keys of one
# row (picked by a hash of its id), and a new wait reads the GRID_ROWS keys of one column
# (picked at random), which cross every row. At 10,000 events and 10,000 new waits a
# second of one name that is 625 writes and 2,500 reads a second on each key, where one
# key would take 10,000 of each (and the shards of the plain log 10,000 reads each).
GRID_ROWS = SHARDS
GRID_COLUMNS = 4
# Threads reading a sharded key's partitions side by side (see DynamoTable._query_each).
_FAN_OUT = ThreadPoolExecutor(max_workers=SHARDS, thread_name_prefix="stepline-shards")
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


def shard_of(text: str, shards: int = SHARDS) -> int:
    """A stable shard number in [0, shards) for a run id or event id."""
    return (
        int.from_bytes(hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()[:4]) % shards
    )


def runs_index_pk(created_at: datetime, run_id: str) -> str:
    """The runs index's partition of a run: its month of creation and a shard."""
    return f"{month_of(created_at)}#{shard_of(run_id)}"


def month_of(instant: datetime) -> str:
    return f"RUNS#{instant:%Y-%m}"


# One item listing the months that have runs, so that listings skip empty months.
MONTHS_KEY: Item = {"pk": s("RUNS#MONTHS"), "sk": s("_")}


def runs_index_pks(month: datetime) -> list[str]:
    """Every runs-index partition of a month (runs listings merge them)."""
    return [f"{month_of(month)}#{shard}" for shard in range(SHARDS)]


def entry_pks(index_key: str) -> list[str]:
    """The partitions that hold the entries under `index_key`: one, or SHARDS for a key
    that every run waiting on an event name without `match` shares."""
    if _shardable(index_key):
        return [f"{index_key}#{shard}" for shard in range(SHARDS)]
    return [index_key]


def entry_pk(index_key: str, run_id: str) -> str:
    """The partition of one run's entry under `index_key` (see `entry_pks`)."""
    if _shardable(index_key):
        return f"{index_key}#{shard_of(run_id)}"
    return index_key


def _shardable(index_key: str) -> bool:
    # A shared key long enough that a suffix would break the key limit stays whole: it
    # would need an event name of about 2 KB.
    return is_shared_key(index_key) and len(index_key.encode()) + 4 <= MAX_PARTITION_KEY_BYTES


def entry_sk(run_id: str, what: str) -> AttributeValueTypeDef:
    """Sort key of an index entry: the run, then the step key or cancel rule it stands for."""
    return s(f"{run_id}#{what}")


def run_and_key(entry: Item) -> tuple[str, str]:
    """(run id, step key or rule) of an index entry (a step key or rule has no `#`)."""
    run_id, _, what = entry["sk"]["S"].rpartition("#")
    return run_id, what


def lease_identity(lease: Lease) -> str:
    return lease.model_dump_json(include=_LEASE_IDENTITY)


# A step record whose JSON is longer than this is stored compressed (`z`, binary), so a
# record holding a ~1 KB output still fits DynamoDB's 1 KB write unit (JSON compresses
# 2-4x); shorter ones stay readable text (`r`). Records written either way read back.
COMPRESS_OVER = 900


def encode_step(record: StepRecord) -> str | bytes:
    """A step record's stored value (text, or zlib-compressed text): also its revision
    once written. Compressed only when that is shorter."""
    text = record.model_dump_json(exclude_none=True, exclude_defaults=True)
    if len(text) > COMPRESS_OVER:
        packed = zlib.compress(text.encode(), 6)
        if len(packed) < len(text):
            return packed
    return text


def decode_step(stored: str | bytes) -> StepRecord:
    """The step record in a stored value (`encode_step`'s inverse; its key is not in it)."""
    return StepRecord.model_validate_json(
        zlib.decompress(stored) if isinstance(stored, bytes) else stored
    )


def step_value(stored: str | bytes) -> AttributeValueTypeDef:
    """The attribute holding a step record's stored value, keyed by its form."""
    return {"B": stored} if isinstance(stored, bytes) else {"S": stored}


def step_attribute(stored: str | bytes) -> str:
    return "z" if isinstance(stored, bytes) else "r"


class DynamoTable:
    """One table and a client for it; see the module docstring."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._client = client
        self._table = table
        # Months already noted as having runs (see `note_month`).
        self._known_months: set[str] = set()

    def note_month(self, created_at: datetime) -> None:
        """Record that `created_at`'s month has runs (once per process per month), so that
        listings skip the empty months' SHARDS partitions."""
        month = month_of(created_at)
        if month in self._known_months:
            return
        self._call(
            self._client.update_item,
            Key=MONTHS_KEY,
            UpdateExpression="ADD months :m",
            ExpressionAttributeValues={":m": {"SS": [month]}},
        )
        self._known_months.add(month)

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

    def _query_each(self, queries: list[dict[str, Any]]) -> list[list[Item]]:
        """Every item of each query (all pages), the queries sent side by side.

        For reads that fan out over a key's shards: one round trip's latency instead of
        SHARDS of them. At most SHARDS at once, so a batch's threads each reading shards
        stay within the client's connection pool (infra/clients.py).
        """
        if len(queries) == 1:
            return [list(self._query(**queries[0]))]
        return list(_FAN_OUT.map(lambda kwargs: list(self._query(**kwargs)), queries))

    def _first_pages(self, queries: list[dict[str, Any]]) -> list[list[Item]]:
        """The first page of each query (a `Limit` says how big), sent side by side."""

        def first(kwargs: dict[str, Any]) -> list[Item]:
            return list(self._call(self._client.query, **kwargs).get("Items", []))

        return list(_FAN_OUT.map(first, queries))

    # -- encoding ------------------------------------------------------------------------

    @staticmethod
    def _run_item(run: RunRecord) -> Item:
        item: Item = {
            "pk": run_pk(run.run_id),
            "sk": s(RUN_SK),
            "st": s(run.status.value),
            "v": n(run.version),
            "wf": s(run.workflow_id),
            "g2pk": s(runs_index_pk(run.created_at, run.run_id)),
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
    def _step_item(run_id: str, record: StepRecord, stored: str | bytes | None = None) -> Item:
        """The item of a step record; `stored` is its stored value (encoded if not given)."""
        value = encode_step(record) if stored is None else stored
        return {
            "pk": run_pk(run_id),
            "sk": step_sk(record.key),
            step_attribute(value): step_value(value),
        }

    @staticmethod
    def _entry_item(run_id: str, index_key: str, record: StepRecord, stored: str | bytes) -> Item:
        """A wait's entry under its index key: a copy of the step item's stored value, so
        an event resolves it by compare-and-set on the step without reading it first."""
        return {
            "pk": s(entry_pk(index_key, run_id)),
            "sk": entry_sk(run_id, str(record.key)),
            step_attribute(stored): step_value(stored),
        }

    @staticmethod
    def _stored_from(item: Item, key: StepKey | None = None) -> Stored:
        """The step record (and revision) in a step item, or in an index entry (`key`)."""
        stored = bytes(item["z"]["B"]) if "z" in item else item["r"]["S"]
        if key is None:
            key = StepKey.parse(item["sk"]["S"].removeprefix(STEP_PREFIX))
        record = decode_step(stored)
        # The key is not stored in the record (the item's key holds it). Set in place on
        # the record just built, which nobody else holds yet: a model_copy per step was a
        # third of a resume's decoding.
        record.__dict__["key"] = key
        return Stored(record, Revision(stored))
