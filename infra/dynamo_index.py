"""The table's entries and logs: waits and cancel rules, runs by month, wait paths, events.

Implements the `MatchIndex` and `EventLog` ports, and the run listings the CLI reads.
An event finds its waits and cancel rules by exact key (engine/ids.py builds the keys; a
key too long for DynamoDB is a digest) in their entries, items read with a strongly
consistent Query: no secondary index, so none can lag behind a wait just registered.
The runs index is keys-only, by month of creation and shard, so no partition holds every
run; listings merge a month's shards newest first. DynamoDB deletes expired items late
(moto never does), so reads filter on `ttl`. See infra/dynamo.py for the layout.
"""

from __future__ import annotations

import hashlib
import heapq
import random
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from engine.errors import TransientError
from engine.ids import MAX_PARTITION_KEY_BYTES, StepKey, event_key
from engine.model import CancelSubscription, EventOutcome, RunRecord, RunStatus
from engine.ports import Stored
from infra.dynamo_table import (
    CANCEL_PREFIX,
    GRID_COLUMNS,
    GRID_ROWS,
    MONTHS_KEY,
    PATH_COPIES,
    RUN_PREFIX,
    SHARDS,
    DynamoTable,
    entry_pks,
    from_micros,
    micros,
    month_of,
    n,
    run_and_key,
    run_id_of,
    runs_index_pks,
    s,
    shard_of,
)
from infra.resources import RUNS_INDEX, TTL_ATTRIBUTE
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
        # (event name, match path) pairs already added, and since when every copy held
        # them: each is written once per process.
        self._known_paths: dict[tuple[str, str], datetime] = {}
        self._paths_lock = threading.Lock()

    # -- runs by month --------------------------------------------------------------------

    def list_runs(
        self,
        *,
        workflow_id: str | None = None,
        status: RunStatus | None = None,
        limit: int = 50,
        months: int = 24,
        now: datetime | None = None,
    ) -> list[RunRecord]:
        found: list[RunRecord] = []
        for month in self._months_with_runs(months, now):
            keys: list[Item] = []
            for item in self.runs_index(month, page=max(limit, 25)):
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
        found: list[str] = []
        for month in self._months_with_runs(months, now):
            for item in self.runs_index(
                month,
                filter_expression="begins_with(pk, :p)",
                values={":p": s(RUN_PREFIX + prefix)},
            ):
                found.append(run_id_of(item))
                if len(found) >= limit:
                    return found
        return found

    def runs_index(
        self,
        month: datetime,
        *,
        key_condition: str = "",
        filter_expression: str | None = None,
        values: Item | None = None,
        page: int | None = None,
    ) -> Iterator[Item]:
        """The runs index's keys of runs created in `month`, newest first.

        Merges the month's SHARDS partitions (each read lazily, page by page).
        `key_condition` is added to the partition condition (on `g2sk`, an ISO instant,
        `#`, the run id); `values` holds its and `filter_expression`'s placeholders.
        """
        streams = []
        for pk in runs_index_pks(month):
            kwargs: dict[str, Any] = {
                "KeyConditionExpression": "g2pk = :m" + key_condition,
                "ExpressionAttributeValues": {":m": s(pk), **(values or {})},
                "ScanIndexForward": False,
            }
            if filter_expression:
                kwargs["FilterExpression"] = filter_expression
            if page:
                kwargs["Limit"] = page
            streams.append(self._query(RUNS_INDEX, **kwargs))
        yield from heapq.merge(*streams, key=lambda item: item["g2sk"]["S"], reverse=True)

    def _months_with_runs(self, months: int, now: datetime | None) -> list[datetime]:
        """The months (first days, newest first) within the last `months` that have runs."""
        item = self._call(self._client.get_item, Key=MONTHS_KEY, ConsistentRead=True).get("Item")
        noted = set(item["months"]["SS"]) if item else set()
        month = (now or datetime.now(UTC)).replace(day=1)
        found = []
        for _ in range(months):
            if month_of(month) in noted:
                found.append(month)
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
        found = []
        for item in self._entries(index_key):
            run_id, key = run_and_key(item)
            if "r" in item or "z" in item:
                found.append((run_id, self._stored_from(item, StepKey.parse(key))))
        return found

    def find_subscriptions(self, index_key: str) -> list[CancelSubscription]:
        return [
            CancelSubscription.model_validate_json(item["r"]["S"])
            for item in self._entries(index_key)
            if index_key.startswith(CANCEL_PREFIX)
        ]

    def _entries(self, index_key: str) -> Iterator[Item]:
        """The entries under an index key, read strongly consistent from every partition
        that holds them: an entry written before this read is always seen."""
        queries = [
            {
                "KeyConditionExpression": "pk = :k",
                "ExpressionAttributeValues": {":k": s(pk)},
                "ConsistentRead": True,
            }
            for pk in entry_pks(index_key)
        ]
        for items in self._query_each(queries):
            yield from items

    def add_wait_path(self, event_name: str, match_path: str | None, *, now: datetime) -> datetime:
        path = match_path or _NO_PATH
        with self._paths_lock:
            known = self._known_paths.get((event_name, path))
        if known is not None:
            return known
        # Each copy keeps when it first held the path (`at:<path>`); the latest of them is
        # when every copy, so every event of the name, had it.
        since = now
        for copy in range(PATH_COPIES):
            attributes = self._call(
                self._client.update_item,
                Key=_paths_key(event_name, copy),
                UpdateExpression="ADD paths :p SET #at = if_not_exists(#at, :now)",
                ExpressionAttributeNames={"#at": f"at:{path}"},
                ExpressionAttributeValues={":p": {"SS": [path]}, ":now": n(micros(now))},
                ReturnValues="ALL_NEW",
            )["Attributes"]
            # Set by this update if the copy had no time yet, so always there.
            since = max(since, from_micros(int(attributes[f"at:{path}"]["N"])))
        with self._paths_lock:
            self._known_paths[(event_name, path)] = since
        return since

    def wait_paths(self, event_name: str) -> set[str | None]:
        # Any copy will do: each holds every path (all are written before a wait is).
        item = self._call(
            self._client.get_item,
            Key=_paths_key(event_name, random.randrange(PATH_COPIES)),
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
                "pk": s(_event_log_pk(event.name, ts, shard_of(event.id))),
                # The id only keeps two events of one instant apart: a fixed-size digest
                # of it, so that no id can make the sort key too long.
                "sk": s(f"{_sortable(ts)}#{event_key(event.id)}"),
                "r": s(event.model_dump_json()),
                TTL_ATTRIBUTE: n(int(expires_at.timestamp())),
            },
        )

    def events_since(self, event_name: str, since: datetime, *, now: datetime) -> list[Event]:
        # Every shard of every day since `since`, read side by side, merged in the order
        # received.
        queries: list[dict[str, Any]] = []
        day = since.astimezone(UTC).date()
        while day <= now.astimezone(UTC).date():
            queries.extend(
                {
                    "KeyConditionExpression": "pk = :pk AND sk >= :since",
                    "ExpressionAttributeValues": {
                        ":pk": s(_event_log_pk(event_name, day, shard)),
                        ":since": s(_sortable(since)),
                    },
                    "ConsistentRead": True,
                }
                for shard in range(SHARDS)
            )
            day += timedelta(days=1)
        found = [
            (item["sk"]["S"], Event.model_validate_json(item["r"]["S"]))
            for items in self._query_each(queries)
            for item in items
            if int(item[TTL_ATTRIBUTE]["N"]) > now.timestamp()
        ]
        found.sort(key=lambda pair: pair[0])
        return [event for _, event in found]

    def record_keyed(
        self, event: Event, index_key: str, *, expires_at: datetime, spread: bool = False
    ) -> None:
        ts = event.ts or datetime.now(UTC)

        def item(pk: str) -> Item:
            return {
                "pk": s(pk),
                "sk": s(f"{_sortable(ts)}#{event_key(event.id)}"),
                "r": s(event.model_dump_json()),
                TTL_ATTRIBUTE: n(int(expires_at.timestamp())),
            }

        if not spread:
            self._call(self._client.put_item, Item=item(_keyed_log_pk(index_key)))
            return
        # One row of the key's grid (GRID_COLUMNS items, one request).
        row = shard_of(event.id, GRID_ROWS)
        batch: dict[str, Any] = {
            self._table: [
                {"PutRequest": {"Item": item(_grid_pk(index_key, row, column))}}
                for column in range(GRID_COLUMNS)
            ]
        }
        for _ in range(8):
            try:
                response = self._client.batch_write_item(RequestItems=batch)
            except (ClientError, BotoCoreError) as error:
                raise self._translate(error) from None
            batch = dict(response.get("UnprocessedItems") or {})
            if not batch:
                return
        raise TransientError("DynamoDB kept returning unprocessed writes of an event's row")

    def events_for_key(
        self, index_key: str, since: datetime, *, now: datetime, spread: bool = False
    ) -> list[Event]:
        # Spread: one column of the key's grid (GRID_ROWS keys, read side by side), which
        # holds every event, each once (its row's item in that column).
        if spread:
            column = random.randrange(GRID_COLUMNS)
            pks = [_grid_pk(index_key, row, column) for row in range(GRID_ROWS)]
        else:
            pks = [_keyed_log_pk(index_key)]
        queries = [
            {
                "KeyConditionExpression": "pk = :pk AND sk >= :since",
                "ExpressionAttributeValues": {":pk": s(pk), ":since": s(_sortable(since))},
                "ConsistentRead": True,
            }
            for pk in pks
        ]
        found = [
            (item["sk"]["S"], Event.model_validate_json(item["r"]["S"]))
            for items in self._query_each(queries)
            for item in items
            if int(item[TTL_ATTRIBUTE]["N"]) > now.timestamp()
        ]
        found.sort(key=lambda pair: pair[0])
        return [event for _, event in found]

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


def _paths_key(event_name: str, copy: int) -> Item:
    return {"pk": s(f"WAITPATHS#{event_name}#{copy}"), "sk": s("_")}


def _event_log_pk(event_name: str, day: date | datetime, shard: int) -> str:
    return f"EVLOG#{event_name}#{day:%Y-%m-%d}#{shard}"


def _keyed_log_pk(index_key: str) -> str:
    """The log of the events kept under a wait's key (`EVKEY#` and the key, or a digest of
    it where the two would pass DynamoDB's key limit)."""
    pk = f"EVKEY#{index_key}"
    if len(pk.encode("utf-8", "surrogatepass")) <= MAX_PARTITION_KEY_BYTES:
        return pk
    return f"EVKEY#~{hashlib.sha256(index_key.encode('utf-8', 'surrogatepass')).hexdigest()}"


def _grid_pk(index_key: str, row: int, column: int) -> str:
    """One key of the grid an index key's events are spread over (GRID_ROWS x
    GRID_COLUMNS keys, numbered row by row)."""
    cell = f"#{row * GRID_COLUMNS + column}"
    pk = f"EVKEY#{index_key}{cell}"
    if len(pk.encode("utf-8", "surrogatepass")) <= MAX_PARTITION_KEY_BYTES:
        return pk
    digest = hashlib.sha256(index_key.encode("utf-8", "surrogatepass")).hexdigest()
    return f"EVKEY#~{digest}{cell}"


def event_log_pks(event_name: str, day: date | datetime) -> list[str]:
    """Every partition of the event log of `event_name` on `day` (its shards)."""
    return [_event_log_pk(event_name, day, shard) for shard in range(SHARDS)]


def _outcome_key(event_id: str) -> Item:
    """Keyed by a hash: event ids can be longer than a key may be (2 KB)."""
    digest = hashlib.sha256(event_id.encode()).hexdigest()[:32]
    return {"pk": s(f"{_OUTCOME_PREFIX}{digest}"), "sk": s(_OUTCOME_SK)}


def _sortable(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
