"""The run partition (`RUN#<run>`): a run's item, trigger event, cancel rules and steps.

Implements the `RunStore` port. Loading a run is one strongly consistent Query of its
partition; each step write is one PutItem with a condition.

Concurrency: the run item is guarded by its version (`v = :expected`), except for lease
renewals, which only extend `lx` (and note `lr`) while `ls` still names the renewing
holder, so a holder's renewals never make its own final write conflict. A step item is
guarded by its stored text (`r = :expected`, the revision) or its absence. Conflicts come
back as `RunConflict` / `StepConflict` carrying the current item
(`ReturnValuesOnConditionCheckFailure`), so the engine never needs a read to learn why a
write lost. A conflict with exactly the item we were writing is a success: an earlier
attempt committed, its response was lost, and botocore retried (found by the throttling
suite; without this the engine abandoned runs it had in fact claimed).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from engine.errors import RunConflict, StepConflict, TransientError
from engine.ids import StepKey
from engine.model import (
    CancelSubscription,
    CurrentStep,
    Lease,
    RunRecord,
    RunStatus,
    StepRecord,
)
from engine.ports import LoadedRun, Revision, Stored
from infra.dynamo_table import (
    BATCH_PREFIX,
    CANCEL_PREFIX,
    EVENT_SK,
    RUN_SK,
    DynamoTable,
    encode_step,
    entry_pk,
    entry_sk,
    is_step,
    lease_identity,
    micros,
    n,
    run_pk,
    s,
    step_attribute,
    step_sk,
    step_value,
)
from sdk import Event

if TYPE_CHECKING:
    from infra.dynamo_table import Item

_TERMINAL = [status.value for status in RunStatus if status.terminal]


class RunItems(DynamoTable):
    """The `RunStore` port on the table."""

    def load(self, run_id: str) -> LoadedRun | None:
        run = event = None
        steps: dict[StepKey, StepRecord] = {}
        revisions: dict[StepKey, Revision] = {}
        subscriptions = []
        batch: dict[str, Event] = {}
        for item in self._query(
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": run_pk(run_id)},
            ConsistentRead=True,
        ):
            sk = item["sk"]["S"]
            if is_step(item):
                stored = self._stored_from(item)
                steps[stored.record.key] = stored.record
                revisions[stored.record.key] = stored.revision
            elif sk == RUN_SK:
                run = self._run_from(item)
            elif sk == EVENT_SK:
                event = Event.model_validate_json(item["r"]["S"])
            elif sk.startswith(CANCEL_PREFIX):
                subscriptions.append(CancelSubscription.model_validate_json(item["r"]["S"]))
            elif sk.startswith(BATCH_PREFIX):
                batch[sk] = Event.model_validate_json(item["r"]["S"])
        if run is None or event is None:
            return None
        return LoadedRun(
            run=run,
            event=event,
            steps=steps,
            subscriptions=subscriptions,
            revisions=revisions,
            batch=[batch[sk] for sk in sorted(batch)],
        )

    def get_event(self, run_id: str) -> Event | None:
        item = self._call(
            self._client.get_item,
            Key={"pk": run_pk(run_id), "sk": s(EVENT_SK)},
            ConsistentRead=True,
        ).get("Item")
        return Event.model_validate_json(item["r"]["S"]) if item else None

    def get_run(self, run_id: str) -> RunRecord | None:
        item = self._call(
            self._client.get_item,
            Key={"pk": run_pk(run_id), "sk": s(RUN_SK)},
            ConsistentRead=True,
        ).get("Item")
        return self._run_from(item) if item else None

    def create_run(
        self, run: RunRecord, event: Event, subscriptions: Sequence[CancelSubscription]
    ) -> RunRecord | None:
        pk = run_pk(run.run_id)
        self.note_month(run.created_at)
        event_item: Item = {"pk": pk, "sk": s(EVENT_SK), "r": s(event.model_dump_json())}
        run_item = self._run_item(run)
        created = "attribute_not_exists(pk)"
        if not subscriptions:
            self._call(self._client.put_item, Item=event_item)
            try:
                self._client.put_item(
                    TableName=self._table,
                    Item=run_item,
                    ConditionExpression=created,
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except ClientError as error:
                if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                    old: Item | None = error.response.get("Item")  # type: ignore[assignment]
                    existing = self._run_from(old) if old else self.get_run(run.run_id)
                    # An earlier attempt of this very call committed: it was created.
                    return None if existing == run else existing
                raise self._translate(error) from None
            except BotoCoreError as error:
                raise self._translate(error) from None
            return None
        items: list[dict[str, Any]] = [
            {"Put": {"TableName": self._table, "Item": event_item}},
            {"Put": {"TableName": self._table, "Item": run_item, "ConditionExpression": created}},
        ]
        for subscription in subscriptions:
            body = s(subscription.model_dump_json(exclude_none=True))
            # The rule in the run's partition (loaded with the run, deleted when it ends)
            # and its entry under its index key (found by the cancelling event).
            for key in subscription_keys(subscription):
                items.append({"Put": {"TableName": self._table, "Item": {**key, "r": body}}})
        try:
            self._client.transact_write_items(TransactItems=items)  # type: ignore[arg-type]
        except ClientError as error:
            if error.response["Error"]["Code"] == "TransactionCanceledException":
                reasons: list[dict[str, Any]] = error.response.get("CancellationReasons", [])  # type: ignore[assignment]
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
                ExpressionAttributeValues={":expected": n(expected_version)},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                old: Item | None = error.response.get("Item")  # type: ignore[assignment]
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
        values: Item = {
            ":x": n(micros(lease.expires_at)),
            ":running": s(RunStatus.RUNNING.value),
            ":lease": s(lease_identity(lease)),
        }
        if current_step is not None:
            update = "SET lx = :x, lr = :r"
            values[":r"] = s(current_step.model_dump_json())
        else:
            update = "SET lx = :x REMOVE lr"
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": run_pk(run_id), "sk": s(RUN_SK)},
                UpdateExpression=update,
                ConditionExpression="st = :running AND ls = :lease",
                ExpressionAttributeValues=values,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                old: Item | None = error.response.get("Item")  # type: ignore[assignment]
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
                Key={"pk": run_pk(run_id), "sk": s(RUN_SK)},
                UpdateExpression="SET wk = :zero, v = v + :one",
                ConditionExpression="attribute_exists(pk) AND NOT st IN (:c, :f, :x)",
                ExpressionAttributeValues={
                    ":zero": n(0),
                    ":one": n(1),
                    ":c": s(_TERMINAL[0]),
                    ":f": s(_TERMINAL[1]),
                    ":x": s(_TERMINAL[2]),
                },
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise self._translate(error) from None
        except BotoCoreError as error:
            raise self._translate(error) from None
        return True

    def put_step(self, run_id: str, record: StepRecord, *, expected: Revision | None) -> Revision:
        stored = encode_step(record)
        item = self._step_item(run_id, record, stored)
        index_key = record.index_key
        if index_key is not None:
            # The entry first: once the step is stored its entry is there for any event
            # to find, with a strongly consistent read (module docstring of dynamo.py).
            self._call(
                self._client.put_item, Item=self._entry_item(run_id, index_key, record, stored)
            )
        condition: dict[str, Any]
        if expected is None:
            condition = {"ConditionExpression": "attribute_not_exists(pk)"}
        else:
            condition = {
                "ConditionExpression": f"{step_attribute(expected.token)} = :expected",
                "ExpressionAttributeValues": {":expected": step_value(expected.token)},
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
                old: Item | None = error.response.get("Item")  # type: ignore[assignment]
                current = self._stored_from(old) if old else None
                if current is not None and current.revision.token == stored:
                    # Our own write, committed by an attempt whose response was lost.
                    return current.revision
                raise StepConflict(current) from None
            raise self._translate(error) from None
        except BotoCoreError as error:
            raise self._translate(error) from None
        if index_key is None and record.wait is not None and expected is not None:
            # Out of the index now: its entry goes too (a leftover entry costs a failed
            # compare-and-set to an event that finds it, never a wrong resolution).
            self._call(
                self._client.delete_item,
                Key={
                    "pk": s(entry_pk(record.wait.index_key, run_id)),
                    "sk": entry_sk(run_id, str(record.key)),
                },
            )
        return Revision(stored)

    def write_steps(self, records: Sequence[tuple[str, StepRecord]]) -> None:
        """Write (run id, step record) pairs unconditionally, 25 per request.

        Not used by the engine (whose every write is conditional): it seeds tables for
        benchmarks and scale tests with records exactly as the engine stores them.
        """
        requests: list[dict[str, Any]] = []
        for run_id, record in records:
            stored = encode_step(record)
            requests.append({"PutRequest": {"Item": self._step_item(run_id, record, stored)}})
            if record.index_key is not None:
                entry = self._entry_item(run_id, record.index_key, record, stored)
                requests.append({"PutRequest": {"Item": entry}})
        for start in range(0, len(requests), 25):
            pending: dict[str, Any] = {self._table: requests[start : start + 25]}
            while pending:
                try:
                    response = self._client.batch_write_item(RequestItems=pending)
                except ClientError as error:
                    raise self._translate(error) from None
                pending = dict(response.get("UnprocessedItems") or {})

    def get_step(self, run_id: str, key: StepKey | str) -> Stored | None:
        item = self._call(
            self._client.get_item,
            Key={"pk": run_pk(run_id), "sk": step_sk(StepKey.of(key))},
            ConsistentRead=True,
        ).get("Item")
        return self._stored_from(item) if item else None

    def delete_subscriptions(self, subscriptions: Sequence[CancelSubscription]) -> None:
        keys: list[dict[str, Any]] = [
            {"DeleteRequest": {"Key": key}}
            for subscription in subscriptions
            for key in subscription_keys(subscription)
        ]
        for start in range(0, len(keys), 25):
            batch: dict[str, Any] = {self._table: keys[start : start + 25]}
            for _ in range(8):
                try:
                    response = self._client.batch_write_item(RequestItems=batch)
                except (ClientError, BotoCoreError) as error:
                    raise self._translate(error) from None
                batch = dict(response.get("UnprocessedItems") or {})
                if not batch:
                    break
            else:
                raise TransientError("DynamoDB kept returning unprocessed deletes")


def subscription_keys(subscription: CancelSubscription) -> list[Item]:
    """Keys of a cancel rule's two items: in its run's partition, and its index entry."""
    rule = f"{subscription.index:03d}"
    return [
        {"pk": run_pk(subscription.run_id), "sk": s(f"{CANCEL_PREFIX}{rule}")},
        {
            "pk": s(entry_pk(subscription.index_key, subscription.run_id)),
            "sk": entry_sk(subscription.run_id, rule),
        },
    ]
