"""DynamoDB adapter: the run store, the match index and the event log, in one table.

Item layout (`pk` / `sk`; every record is one JSON attribute `r`):

| item | pk | sk | other attributes |
|---|---|---|---|
| run | `RUN#<run>` | `RUN` | `st` status, `v` version, `wk` wake time (epoch µs), `wf`, `g2pk`/`g2sk` (runs index); while RUNNING `ls` lease (who holds it), `lx` its expiry (epoch µs), `lr` the step running now |
| trigger event | `RUN#<run>` | `EVENT` | |
| cancel rule | `RUN#<run>` | `CANCEL#<i>` | `g1pk`/`g1sk` (waiters index) |
| step | `RUN#<run>` | `STEP#<position>` | `g1pk`/`g1sk` while indexed as a wait |
| wait paths | `WAITPATHS#<event name>` | `_` | `paths` string set |
| logged event | `EVLOG#<name>#<day>` | `<ts received>#<digest of id>` | `ttl` |
| what an event started | `EVENT#<sha-256 of its id>` | `OUTCOME` | `ttl` |

So loading a run is one Query on its partition, each step write is one PutItem with a
condition, and an event finds its waits with one Query on the `waiters` index.

Concurrency: the run item is guarded by its version (`v = :expected`), except for lease
renewals, which only extend `lx` (and note `lr`) while `ls` still names the renewing
holder, so a holder's renewals never make its own final write conflict. Step records by
their previous content (`r = :raw`) or absence. Conflicts come back as `RunConflict` /
`StepConflict` carrying the current item (`ReturnValuesOnConditionCheckFailure`), so the
engine never needs a read to learn why a write lost. A conflict with exactly the item we
were writing is a success: an earlier attempt committed, its response was lost, and
botocore retried (found by the throttling suite; without this the engine abandoned runs
it had in fact claimed). Throttling is retried by botocore
(standard mode); what is left becomes `TransientError`, and what retrying cannot fix a
`PermanentError` (`TableMissing`, `ItemTooLargeError`, ...), chosen by error code
(infra/aws_errors.py). No `ClientError` leaves here.

Keys stay within DynamoDB's limits by construction: index keys (`g1pk`) that would be
too long are digests (engine/ids.py), and event ids enter the event log's sort key as
digests.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from engine.ids import event_key
from engine.model import (
    EPOCH,
    CancelSubscription,
    CurrentStep,
    EventOutcome,
    Lease,
    LoadedRun,
    RunRecord,
    RunStatus,
    StepRecord,
)
from engine.ports import (
    ItemTooLargeError,
    ResourceMissingError,
    RunConflict,
    StepConflict,
    TransientError,
)
from infra.aws_errors import aws_error, error_code
from infra.resources import RUNS_INDEX, TTL_ATTRIBUTE, WAITERS_INDEX
from sdk import Event

log = logging.getLogger("stepline.dynamodb")

T = TypeVar("T")

_RUN_SK = "RUN"
_EVENT_SK = "EVENT"
_STEP_PREFIX = "STEP#"
_CANCEL_PREFIX = "CANCEL#"
_OUTCOME_PREFIX = "EVENT#"
_OUTCOME_SK = "OUTCOME"
_NO_PATH = "*"
_RUN_ATTRIBUTES_IN_COLUMNS = {"status", "version", "wake_at", "lease"}
# The part of a lease that says who holds it; renewals are conditional on it.
_LEASE_IDENTITY = {"message_id", "receive_count", "holder"}
_TERMINAL = [status.value for status in RunStatus if status.terminal]
# Why a transaction was cancelled, when trying again later may succeed.
_TRANSIENT_CANCELLATIONS = {
    "TransactionConflict",
    "ProvisionedThroughputExceeded",
    "ThrottlingError",
}


class TableMissing(ResourceMissingError):
    """The table (or its index) does not exist."""


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _micros(instant: datetime) -> int:
    delta = instant - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _from_micros(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


class DynamoStore:
    """Implements RunStore, MatchIndex and EventLog on one table."""

    def __init__(self, client: Any, table: str) -> None:
        self._client = client
        self._table = table
        self._known_paths: set[tuple[str, str]] = set()
        self._paths_lock = threading.Lock()

    # -- error translation ---------------------------------------------------------------

    def _call(self, operation: Callable[..., T], **kwargs: Any) -> T:
        try:
            return operation(TableName=self._table, **kwargs)
        except ClientError as error:
            raise self._translate(error) from None
        except BotoCoreError as error:
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
                reasons = error.response.get("CancellationReasons") or []
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

    # -- encoding ------------------------------------------------------------------------

    @staticmethod
    def _run_item(run: RunRecord) -> dict[str, Any]:
        item = {
            "pk": _s(f"RUN#{run.run_id}"),
            "sk": _s(_RUN_SK),
            "st": _s(run.status.value),
            "v": _n(run.version),
            "wf": _s(run.workflow_id),
            "g2pk": _s(f"RUNS#{run.created_at:%Y-%m}"),
            "g2sk": _s(f"{run.created_at.isoformat()}#{run.run_id}"),
            "r": _s(run.model_dump_json(exclude=_RUN_ATTRIBUTES_IN_COLUMNS, exclude_none=True)),
        }
        if run.wake_at is not None:
            item["wk"] = _n(_micros(run.wake_at))
        if run.lease is not None:
            item["ls"] = _s(_lease_identity(run.lease))
            item["lx"] = _n(_micros(run.lease.expires_at))
            if run.lease.current_step is not None:
                item["lr"] = _s(run.lease.current_step.model_dump_json())
        return item

    @staticmethod
    def _run_from(item: dict[str, Any]) -> RunRecord:
        data = json.loads(item["r"]["S"])
        data["status"] = item["st"]["S"]
        data["version"] = int(item["v"]["N"])
        if "wk" in item:
            data["wake_at"] = _from_micros(int(item["wk"]["N"]))
        if "ls" in item:
            lease = json.loads(item["ls"]["S"])
            lease["expires_at"] = _from_micros(int(item["lx"]["N"]))
            if "lr" in item:
                lease["current_step"] = json.loads(item["lr"]["S"])
            data["lease"] = lease
        return RunRecord.model_validate(data)

    @staticmethod
    def _step_item(run_id: str, record: StepRecord, raw: str) -> dict[str, Any]:
        item = {
            "pk": _s(f"RUN#{run_id}"),
            "sk": _s(_STEP_PREFIX + record.key),
            "r": _s(raw),
        }
        index_key = record.index_key
        if index_key is not None:
            item["g1pk"] = _s(index_key)
            item["g1sk"] = _s(f"{run_id}#{record.key}")
        return item

    @staticmethod
    def _step_from(item: dict[str, Any]) -> StepRecord:
        raw = item["r"]["S"]
        record = StepRecord.model_validate_json(raw)
        key = item["sk"]["S"][len(_STEP_PREFIX) :]
        return record.model_copy(update={"key": key, "raw": raw})

    # -- RunStore ------------------------------------------------------------------------

    def load(self, run_id: str) -> LoadedRun | None:
        run = event = None
        steps: dict[str, StepRecord] = {}
        subscriptions = []
        for item in self._query(
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": _s(f"RUN#{run_id}")},
            ConsistentRead=True,
        ):
            sk = item["sk"]["S"]
            if sk.startswith(_STEP_PREFIX):
                record = self._step_from(item)
                steps[record.key] = record
            elif sk == _RUN_SK:
                run = self._run_from(item)
            elif sk == _EVENT_SK:
                event = Event.model_validate_json(item["r"]["S"])
            elif sk.startswith(_CANCEL_PREFIX):
                subscriptions.append(CancelSubscription.model_validate_json(item["r"]["S"]))
        if run is None or event is None:
            return None
        return LoadedRun(run=run, event=event, steps=steps, subscriptions=subscriptions)

    def _query(self, index: str | None = None, **kwargs: Any) -> Iterator[dict[str, Any]]:
        if index is not None:
            kwargs["IndexName"] = index
        while True:
            page = self._call(self._client.query, **kwargs)
            yield from page.get("Items", [])
            last = page.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last

    def get_event(self, run_id: str) -> Event | None:
        item = self._call(
            self._client.get_item,
            Key={"pk": _s(f"RUN#{run_id}"), "sk": _s(_EVENT_SK)},
            ConsistentRead=True,
        ).get("Item")
        return Event.model_validate_json(item["r"]["S"]) if item else None

    def get_run(self, run_id: str) -> RunRecord | None:
        item = self._call(
            self._client.get_item,
            Key={"pk": _s(f"RUN#{run_id}"), "sk": _s(_RUN_SK)},
            ConsistentRead=True,
        ).get("Item")
        return self._run_from(item) if item else None

    def create_run(
        self, run: RunRecord, event: Event, subscriptions: Sequence[CancelSubscription]
    ) -> RunRecord | None:
        pk = _s(f"RUN#{run.run_id}")
        event_item = {"pk": pk, "sk": _s(_EVENT_SK), "r": _s(event.model_dump_json())}
        run_put = {
            "Item": self._run_item(run),
            "ConditionExpression": "attribute_not_exists(pk)",
        }
        if not subscriptions:
            self._call(self._client.put_item, Item=event_item)
            try:
                self._client.put_item(
                    TableName=self._table,
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                    **run_put,
                )
            except ClientError as error:
                if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                    old = error.response.get("Item")
                    existing = self._run_from(old) if old else self.get_run(run.run_id)
                    # An earlier attempt of this very call committed: it was created.
                    return None if existing == run else existing
                raise self._translate(error) from None
            except BotoCoreError as error:
                raise self._translate(error) from None
            return None
        items: list[dict[str, Any]] = [
            {"Put": {"TableName": self._table, "Item": event_item}},
            {"Put": {"TableName": self._table, **run_put}},
        ]
        for subscription in subscriptions:
            items.append(
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": {
                            "pk": pk,
                            "sk": _s(f"{_CANCEL_PREFIX}{subscription.index:03d}"),
                            "g1pk": _s(subscription.index_key),
                            "g1sk": _s(run.run_id),
                            "r": _s(subscription.model_dump_json(exclude_none=True)),
                        },
                    }
                }
            )
        try:
            self._client.transact_write_items(TransactItems=items)
        except ClientError as error:
            if error.response["Error"]["Code"] == "TransactionCanceledException":
                reasons = error.response.get("CancellationReasons", [])
                if len(reasons) > 1 and reasons[1].get("Code") == "ConditionalCheckFailed":
                    existing = self.get_run(run.run_id)
                    return None if existing == run else existing
            raise self._translate(error) from None
        except BotoCoreError as error:
            raise self._translate(error) from None
        return None

    def write_run(self, run: RunRecord, *, expected_version: int) -> None:
        try:
            self._client.put_item(
                TableName=self._table,
                Item=self._run_item(run),
                ConditionExpression="v = :expected",
                ExpressionAttributeValues={":expected": _n(expected_version)},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                old = error.response.get("Item")
                current = self._run_from(old) if old else None
                if current == run:
                    # Our own write: an earlier attempt committed but its response was
                    # lost (a timeout, a 5xx) and botocore retried. It succeeded.
                    return
                raise RunConflict(current) from None
            raise self._translate(error) from None
        except BotoCoreError as error:
            raise self._translate(error) from None

    def renew_lease(
        self, run_id: str, lease: Lease, *, current_step: CurrentStep | None = None
    ) -> RunRecord | None:
        values: dict[str, Any] = {
            ":x": _n(_micros(lease.expires_at)),
            ":running": _s(RunStatus.RUNNING.value),
            ":lease": _s(_lease_identity(lease)),
        }
        if current_step is not None:
            update = "SET lx = :x, lr = :r"
            values[":r"] = _s(current_step.model_dump_json())
        else:
            update = "SET lx = :x REMOVE lr"
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": _s(f"RUN#{run_id}"), "sk": _s(_RUN_SK)},
                UpdateExpression=update,
                ConditionExpression="st = :running AND ls = :lease",
                ExpressionAttributeValues=values,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                old = error.response.get("Item")
                if not old:
                    raise RunConflict(None) from None
                return self._run_from(old)
            raise self._translate(error) from None
        except BotoCoreError as error:
            raise TransientError(f"DynamoDB unreachable: {error}") from None
        return None

    def poke(self, run_id: str) -> bool:
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": _s(f"RUN#{run_id}"), "sk": _s(_RUN_SK)},
                UpdateExpression="SET wk = :zero, v = v + :one",
                ConditionExpression="attribute_exists(pk) AND NOT st IN (:c, :f, :x)",
                ExpressionAttributeValues={
                    ":zero": _n(0),
                    ":one": _n(1),
                    ":c": _s(_TERMINAL[0]),
                    ":f": _s(_TERMINAL[1]),
                    ":x": _s(_TERMINAL[2]),
                },
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise self._translate(error) from None
        except BotoCoreError as error:
            raise self._translate(error) from None
        return True

    def put_step(
        self, run_id: str, record: StepRecord, *, expected: StepRecord | None
    ) -> StepRecord:
        raw = record.model_dump_json(exclude_none=True, exclude_defaults=True)
        item = self._step_item(run_id, record, raw)
        if expected is None:
            condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        else:
            expected_raw = expected.raw or expected.model_dump_json(
                exclude_none=True, exclude_defaults=True
            )
            condition = {
                "ConditionExpression": "r = :expected",
                "ExpressionAttributeValues": {":expected": _s(expected_raw)},
            }
        try:
            self._client.put_item(
                TableName=self._table,
                Item=item,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **condition,
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                old = error.response.get("Item")
                current = self._step_from(old) if old else None
                if current is not None and current.raw == raw:
                    # Our own write, committed by an attempt whose response was lost.
                    return record.model_copy(update={"raw": raw})
                raise StepConflict(current) from None
            raise self._translate(error) from None
        except BotoCoreError as error:
            raise self._translate(error) from None
        return record.model_copy(update={"raw": raw})

    def write_steps(self, records: Sequence[tuple[str, StepRecord]]) -> None:
        """Write (run id, step record) pairs unconditionally, 25 per request.

        Not used by the engine (whose every write is conditional): it seeds tables for
        benchmarks and scale tests with records exactly as the engine stores them.
        """
        requests = [
            {
                "PutRequest": {
                    "Item": self._step_item(
                        run_id,
                        record,
                        record.model_dump_json(exclude_none=True, exclude_defaults=True),
                    )
                }
            }
            for run_id, record in records
        ]
        for start in range(0, len(requests), 25):
            pending: dict[str, Any] = {self._table: requests[start : start + 25]}
            while pending:
                try:
                    response = self._client.batch_write_item(RequestItems=pending)
                except ClientError as error:
                    raise self._translate(error) from None
                pending = response.get("UnprocessedItems") or {}

    def get_step(self, run_id: str, key: str) -> StepRecord | None:
        item = self._call(
            self._client.get_item,
            Key={"pk": _s(f"RUN#{run_id}"), "sk": _s(_STEP_PREFIX + key)},
            ConsistentRead=True,
        ).get("Item")
        return self._step_from(item) if item else None

    def delete_subscriptions(self, subscriptions: Sequence[CancelSubscription]) -> None:
        keys = [
            {
                "DeleteRequest": {
                    "Key": {
                        "pk": _s(f"RUN#{subscription.run_id}"),
                        "sk": _s(f"{_CANCEL_PREFIX}{subscription.index:03d}"),
                    }
                }
            }
            for subscription in subscriptions
        ]
        for start in range(0, len(keys), 25):
            batch = {self._table: keys[start : start + 25]}
            for _ in range(8):
                try:
                    response = self._client.batch_write_item(RequestItems=batch)
                except ClientError as error:
                    raise self._translate(error) from None
                except BotoCoreError as error:
                    raise self._translate(error) from None
                batch = response.get("UnprocessedItems") or {}
                if not batch:
                    break
            else:
                raise TransientError("DynamoDB kept returning unprocessed deletes")

    def list_runs(
        self,
        *,
        workflow_id: str | None = None,
        status: RunStatus | None = None,
        limit: int = 50,
        months: int = 24,
        now: datetime | None = None,
    ) -> list[RunRecord]:
        month = (now or datetime.now(UTC)).replace(day=1)
        found: list[RunRecord] = []
        for _ in range(months):
            keys = []
            for item in self._query(
                RUNS_INDEX,
                KeyConditionExpression="g2pk = :m",
                ExpressionAttributeValues={":m": _s(f"RUNS#{month:%Y-%m}")},
                ScanIndexForward=False,
            ):
                keys.append({"pk": item["pk"], "sk": item["sk"]})
                if len(keys) >= 100:
                    found.extend(self._matching_runs(keys, workflow_id, status))
                    keys = []
                    if len(found) >= limit:
                        break
            if keys and len(found) < limit:
                found.extend(self._matching_runs(keys, workflow_id, status))
            if len(found) >= limit:
                break
            month = (month - timedelta(days=1)).replace(day=1)
        found.sort(key=lambda run: run.created_at, reverse=True)
        return found[:limit]

    def run_ids_with_prefix(
        self, prefix: str, *, limit: int = 10, months: int = 24, now: datetime | None = None
    ) -> list[str]:
        """Ids of runs that start with `prefix`, newest first, at most `limit` (for the CLI,
        which accepts a unique prefix of a run id).

        Reads the keys-only runs index month by month, as `list_runs` does: every run's
        key is read, so on a very large table a whole id is much cheaper.
        """
        month = (now or datetime.now(UTC)).replace(day=1)
        found: list[str] = []
        for _ in range(months):
            for item in self._query(
                RUNS_INDEX,
                KeyConditionExpression="g2pk = :m",
                FilterExpression="begins_with(pk, :p)",
                ExpressionAttributeValues={
                    ":m": _s(f"RUNS#{month:%Y-%m}"),
                    ":p": _s(f"RUN#{prefix}"),
                },
                ScanIndexForward=False,
            ):
                found.append(item["pk"]["S"][len("RUN#") :])
                if len(found) >= limit:
                    return found
            month = (month - timedelta(days=1)).replace(day=1)
        return found

    def _matching_runs(
        self, keys: list[dict[str, Any]], workflow_id: str | None, status: RunStatus | None
    ) -> list[RunRecord]:
        runs = []
        pending: dict[str, Any] = {self._table: {"Keys": keys, "ConsistentRead": True}}
        while pending:
            try:
                response = self._client.batch_get_item(RequestItems=pending)
            except ClientError as error:
                raise self._translate(error) from None
            except BotoCoreError as error:
                raise self._translate(error) from None
            for item in response.get("Responses", {}).get(self._table, []):
                run = self._run_from(item)
                if workflow_id and run.workflow_id != workflow_id:
                    continue
                if status and run.status is not status:
                    continue
                runs.append(run)
            pending = response.get("UnprocessedKeys") or {}
        runs.sort(key=lambda run: run.created_at, reverse=True)
        return runs

    # -- MatchIndex ----------------------------------------------------------------------

    def find_waiters(self, index_key: str) -> list[tuple[str, StepRecord]]:
        found = []
        for item in self._query(
            WAITERS_INDEX,
            KeyConditionExpression="g1pk = :k",
            ExpressionAttributeValues={":k": _s(index_key)},
        ):
            if item["sk"]["S"].startswith(_STEP_PREFIX):
                found.append((item["pk"]["S"][4:], self._step_from(item)))
        return found

    def find_subscriptions(self, index_key: str) -> list[CancelSubscription]:
        return [
            CancelSubscription.model_validate_json(item["r"]["S"])
            for item in self._query(
                WAITERS_INDEX,
                KeyConditionExpression="g1pk = :k",
                ExpressionAttributeValues={":k": _s(index_key)},
            )
            if item["sk"]["S"].startswith(_CANCEL_PREFIX)
        ]

    def add_wait_path(self, event_name: str, match_path: str | None) -> None:
        path = match_path or _NO_PATH
        with self._paths_lock:
            if (event_name, path) in self._known_paths:
                return
        self._call(
            self._client.update_item,
            Key={"pk": _s(f"WAITPATHS#{event_name}"), "sk": _s("_")},
            UpdateExpression="ADD paths :p",
            ExpressionAttributeValues={":p": {"SS": [path]}},
        )
        with self._paths_lock:
            self._known_paths.add((event_name, path))

    def wait_paths(self, event_name: str) -> set[str | None]:
        item = self._call(
            self._client.get_item,
            Key={"pk": _s(f"WAITPATHS#{event_name}"), "sk": _s("_")},
            ConsistentRead=True,
        ).get("Item")
        if not item:
            return set()
        return {None if path == _NO_PATH else path for path in item["paths"]["SS"]}

    # -- EventLog ------------------------------------------------------------------------

    def record_event(self, event: Event, *, expires_at: datetime) -> None:
        ts = event.ts or datetime.now(UTC)
        self._call(
            self._client.put_item,
            Item={
                "pk": _s(f"EVLOG#{event.name}#{ts:%Y-%m-%d}"),
                # The id only keeps two events of one instant apart: a fixed-size digest
                # of it, so that no id can make the sort key too long.
                "sk": _s(f"{_sortable(ts)}#{event_key(event.id)}"),
                "r": _s(event.model_dump_json()),
                TTL_ATTRIBUTE: _n(int(expires_at.timestamp())),
            },
        )

    def events_since(self, event_name: str, since: datetime, *, now: datetime) -> list[Event]:
        found = []
        day = since.astimezone(UTC).date()
        while day <= now.astimezone(UTC).date():
            for item in self._query(
                KeyConditionExpression="pk = :pk AND sk >= :since",
                ExpressionAttributeValues={
                    ":pk": _s(f"EVLOG#{event_name}#{day:%Y-%m-%d}"),
                    ":since": _s(_sortable(since)),
                },
                ConsistentRead=True,
            ):
                # DynamoDB deletes expired items late (moto never does): filter on read.
                if int(item[TTL_ATTRIBUTE]["N"]) > now.timestamp():
                    found.append(Event.model_validate_json(item["r"]["S"]))
            day += timedelta(days=1)
        return found

    # -- what the trigger handler did with each event ----------------------------------

    def record_outcome(self, outcome: EventOutcome, *, expires_at: datetime) -> None:
        # One PutItem per event, however many runs it started (about 1 write unit).
        self._call(
            self._client.put_item,
            Item={
                **_outcome_key(outcome.event_id),
                "r": _s(outcome.model_dump_json(exclude_defaults=True)),
                TTL_ATTRIBUTE: _n(int(expires_at.timestamp())),
            },
        )

    def get_outcome(self, event_id: str, *, now: datetime) -> EventOutcome | None:
        item = self._call(
            self._client.get_item, Key=_outcome_key(event_id), ConsistentRead=True
        ).get("Item")
        # DynamoDB deletes expired items late (moto never does): filter on read.
        if not item or int(item[TTL_ATTRIBUTE]["N"]) <= now.timestamp():
            return None
        outcome = EventOutcome.model_validate_json(item["r"]["S"])
        return outcome if outcome.event_id == event_id else None


def _outcome_key(event_id: str) -> dict[str, Any]:
    """Keyed by a hash: event ids can be longer than a key may be (2 KB)."""
    digest = hashlib.sha256(event_id.encode()).hexdigest()[:32]
    return {"pk": _s(f"{_OUTCOME_PREFIX}{digest}"), "sk": _s(_OUTCOME_SK)}


def _lease_identity(lease: Lease) -> str:
    return lease.model_dump_json(include=_LEASE_IDENTITY)


def _sortable(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
