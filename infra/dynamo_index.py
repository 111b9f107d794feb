"""The table's indexes and logs: waiters, runs by month, wait paths, events, event outcomes.

Implements the `MatchIndex` and `EventLog` ports, and the run listings the CLI reads.
An event finds its waits and cancel rules with one Query on the `waiters` index, by
exact key (engine/ids.py builds the keys; a key too long for DynamoDB is a digest).
The runs index is keys-only, by month of creation, so no partition holds every run.
DynamoDB deletes expired items late (moto never does), so reads filter on `ttl`.
"""

from __future__ import annotations

import hashlib
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from engine.ids import event_key
from engine.model import CancelSubscription, EventOutcome, RunRecord, RunStatus
from engine.ports import Stored
from infra.dynamo_table import (
    CANCEL_PREFIX,
    RUN_PREFIX,
    DynamoTable,
    is_step,
    n,
    run_id_of,
    s,
)
from infra.resources import RUNS_INDEX, TTL_ATTRIBUTE, WAITERS_INDEX
from sdk import Event

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from infra.dynamo_table import Item

_OUTCOME_PREFIX = "EVENT#"
_OUTCOME_SK = "OUTCOME"
_NO_PATH = "*"


class IndexItems(DynamoTable):
    """The `MatchIndex` and `EventLog` ports, and run listings, on the table."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        super().__init__(client, table)
        # (event name, match path) pairs already added: each is written once per process.
        self._known_paths: set[tuple[str, str]] = set()
        self._paths_lock = threading.Lock()

    # -- runs by month -------------------------------------------------------------------

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
            keys: list[Item] = []
            for item in self._query(
                RUNS_INDEX,
                KeyConditionExpression="g2pk = :m",
                ExpressionAttributeValues={":m": s(f"RUNS#{month:%Y-%m}")},
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
                    ":m": s(f"RUNS#{month:%Y-%m}"),
                    ":p": s(RUN_PREFIX + prefix),
                },
                ScanIndexForward=False,
            ):
                found.append(run_id_of(item))
                if len(found) >= limit:
                    return found
            month = (month - timedelta(days=1)).replace(day=1)
        return found

    def _matching_runs(
        self, keys: list[Item], workflow_id: str | None, status: RunStatus | None
    ) -> list[RunRecord]:
        runs = []
        pending: dict[str, Any] = {self._table: {"Keys": keys, "ConsistentRead": True}}
        while pending:
            try:
                response = self._client.batch_get_item(RequestItems=pending)
            except (ClientError, BotoCoreError) as error:
                raise self._translate(error) from None
            for item in response.get("Responses", {}).get(self._table, []):
                run = self._run_from(item)
                if workflow_id and run.workflow_id != workflow_id:
                    continue
                if status and run.status is not status:
                    continue
                runs.append(run)
            pending = dict(response.get("UnprocessedKeys") or {})
        runs.sort(key=lambda run: run.created_at, reverse=True)
        return runs

    # -- MatchIndex ----------------------------------------------------------------------

    def find_waiters(self, index_key: str) -> list[tuple[str, Stored]]:
        return [
            (run_id_of(item), self._stored_from(item))
            for item in self._query(
                WAITERS_INDEX,
                KeyConditionExpression="g1pk = :k",
                ExpressionAttributeValues={":k": s(index_key)},
            )
            if is_step(item)
        ]

    def find_subscriptions(self, index_key: str) -> list[CancelSubscription]:
        return [
            CancelSubscription.model_validate_json(item["r"]["S"])
            for item in self._query(
                WAITERS_INDEX,
                KeyConditionExpression="g1pk = :k",
                ExpressionAttributeValues={":k": s(index_key)},
            )
            if item["sk"]["S"].startswith(CANCEL_PREFIX)
        ]

    def add_wait_path(self, event_name: str, match_path: str | None) -> None:
        path = match_path or _NO_PATH
        with self._paths_lock:
            if (event_name, path) in self._known_paths:
                return
        self._call(
            self._client.update_item,
            Key={"pk": s(f"WAITPATHS#{event_name}"), "sk": s("_")},
            UpdateExpression="ADD paths :p",
            ExpressionAttributeValues={":p": {"SS": [path]}},
        )
        with self._paths_lock:
            self._known_paths.add((event_name, path))

    def wait_paths(self, event_name: str) -> set[str | None]:
        item = self._call(
            self._client.get_item,
            Key={"pk": s(f"WAITPATHS#{event_name}"), "sk": s("_")},
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
                "pk": s(f"EVLOG#{event.name}#{ts:%Y-%m-%d}"),
                # The id only keeps two events of one instant apart: a fixed-size digest
                # of it, so that no id can make the sort key too long.
                "sk": s(f"{_sortable(ts)}#{event_key(event.id)}"),
                "r": s(event.model_dump_json()),
                TTL_ATTRIBUTE: n(int(expires_at.timestamp())),
            },
        )

    def events_since(self, event_name: str, since: datetime, *, now: datetime) -> list[Event]:
        found = []
        day = since.astimezone(UTC).date()
        while day <= now.astimezone(UTC).date():
            for item in self._query(
                KeyConditionExpression="pk = :pk AND sk >= :since",
                ExpressionAttributeValues={
                    ":pk": s(f"EVLOG#{event_name}#{day:%Y-%m-%d}"),
                    ":since": s(_sortable(since)),
                },
                ConsistentRead=True,
            ):
                if int(item[TTL_ATTRIBUTE]["N"]) > now.timestamp():
                    found.append(Event.model_validate_json(item["r"]["S"]))
            day += timedelta(days=1)
        return found

    def record_outcome(self, outcome: EventOutcome, *, expires_at: datetime) -> None:
        # One PutItem per event, however many runs it started (about 1 write unit).
        self._call(
            self._client.put_item,
            Item={
                **_outcome_key(outcome.event_id),
                "r": s(outcome.model_dump_json(exclude_defaults=True)),
                TTL_ATTRIBUTE: n(int(expires_at.timestamp())),
            },
        )

    def get_outcome(self, event_id: str, *, now: datetime) -> EventOutcome | None:
        item = self._call(
            self._client.get_item, Key=_outcome_key(event_id), ConsistentRead=True
        ).get("Item")
        if not item or int(item[TTL_ATTRIBUTE]["N"]) <= now.timestamp():
            return None
        outcome = EventOutcome.model_validate_json(item["r"]["S"])
        return outcome if outcome.event_id == event_id else None


def _outcome_key(event_id: str) -> Item:
    """Keyed by a hash: event ids can be longer than a key may be (2 KB)."""
    digest = hashlib.sha256(event_id.encode()).hexdigest()[:32]
    return {"pk": s(f"{_OUTCOME_PREFIX}{digest}"), "sk": s(_OUTCOME_SK)}


def _sortable(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
