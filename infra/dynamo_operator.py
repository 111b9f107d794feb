"""The operator's items and reads: workflow holds, event effects, and browsing for the dashboard.

| item | pk | sk | notes |
|---|---|---|---|
| a workflow's hold | `WORKFLOW#<id>` | `CONTROL` | `WorkflowControl` (engine/control.py) |
| what the waits / cancel handler did with an event | `EVENT#<sha-256 of its id>` | `RESOLVED` / `CANCELLED` | beside the trigger's `OUTCOME`; `ttl` |
| event names seen | `EVNAMES` | `_` | `names` string set, added to once per name per process |
| the dev server's facts | `STEPLINE#DEV` | `INFO` | its app, folder and dashboard URL (`stepline dev` only) |

Browsing reads only what exists for the engine: the keys-only runs index (month by
month, newest first, a time range as a key condition on `g2sk`), the runs' items and
trigger events by `BatchGetItem`, and the event log's day partitions per event name
(infra/dynamo_index.py). The set of names is what lets the events page find those
partitions without a Scan; it is written at most once per name per process, and a
failure to write it never fails the event's handling (it only hides that name from the
page until the next event of it).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from engine.errors import PermanentError, TransientError
from engine.model import EventOutcome, RunRecord
from engine.operator_model import EventEffect, WorkflowControl
from infra.dynamo_index import IndexItems, event_log_pks
from infra.dynamo_table import EVENT_SK, RUN_SK, month_of, n, run_pk, s
from infra.resources import TTL_ATTRIBUTE
from sdk import Event

if TYPE_CHECKING:
    from infra.dynamo_table import Item

log = logging.getLogger("stepline.store")

_NAMES_KEY: Item = {"pk": {"S": "EVNAMES"}, "sk": {"S": "_"}}
_DEV_KEY: Item = {"pk": {"S": "STEPLINE#DEV"}, "sk": {"S": "INFO"}}
_MAX_NAMES = 2_000
_EFFECT_SK = {"resolved": "RESOLVED", "cancelled": "CANCELLED"}


@dataclass
class RunPage:
    """One page of runs, newest first, and the cursor of the next (None: no more)."""

    runs: list[RunRecord]
    events: dict[str, Event] = field(default_factory=dict)
    next_cursor: str | None = None


@dataclass
class EventActivity:
    """What one event did: the trigger's outcome and the waits and cancels it caused."""

    outcome: EventOutcome | None = None
    resolved: tuple[str, ...] = ()
    cancelled: tuple[str, ...] = ()


def _event_pk(event_id: str) -> str:
    # The same digest as the trigger's outcome item (infra/dynamo_index.py).
    return "EVENT#" + hashlib.sha256(event_id.encode()).hexdigest()[:32]


class OperatorItems(IndexItems):
    """Workflow holds, event effects and the dashboard's reads, on the table."""

    def __init__(self, client: Any, table: str) -> None:
        super().__init__(client, table)
        self._names_written: set[str] = set()
        self._names_lock = threading.Lock()

    # -- workflow holds (RunStore) -------------------------------------------------------

    def get_workflow_control(self, workflow_id: str) -> WorkflowControl | None:
        item = self._call(
            self._client.get_item,
            Key={"pk": s(f"WORKFLOW#{workflow_id}"), "sk": s("CONTROL")},
            ConsistentRead=True,
        ).get("Item")
        return WorkflowControl.model_validate_json(item["r"]["S"]) if item else None

    def put_workflow_control(self, control: WorkflowControl) -> None:
        self._call(
            self._client.put_item,
            Item={
                "pk": s(f"WORKFLOW#{control.workflow_id}"),
                "sk": s("CONTROL"),
                "r": s(control.model_dump_json(exclude_none=True)),
            },
        )

    # -- the dev server's facts ---------------------------------------------------------

    def put_dev_info(self, info: dict[str, str]) -> None:
        self._call(self._client.put_item, Item={**_DEV_KEY, "r": s(json.dumps(info))})

    def get_dev_info(self) -> dict[str, str] | None:
        item = self._call(self._client.get_item, Key=_DEV_KEY, ConsistentRead=True).get("Item")
        return dict(json.loads(item["r"]["S"])) if item else None

    # -- event effects and names (EventLog) ----------------------------------------------

    def record_effect(self, effect: EventEffect, *, expires_at: datetime) -> None:
        self._call(
            self._client.put_item,
            Item={
                "pk": s(_event_pk(effect.event_id)),
                "sk": s(_EFFECT_SK[effect.kind]),
                "r": s(effect.model_dump_json()),
                TTL_ATTRIBUTE: n(int(expires_at.timestamp())),
            },
        )

    def record_event(self, event: Event, *, expires_at: datetime) -> None:
        super().record_event(event, expires_at=expires_at)
        self._note_event_name(event.name)

    def _note_event_name(self, name: str) -> None:
        with self._names_lock:
            if name in self._names_written or len(self._names_written) >= _MAX_NAMES:
                return
        try:
            self._call(
                self._client.update_item,
                Key=_NAMES_KEY,
                UpdateExpression="ADD #names :n",
                ExpressionAttributeNames={"#names": "names"},
                ExpressionAttributeValues={":n": {"SS": [name]}},
            )
        except (TransientError, PermanentError) as error:
            log.warning("could not note event name %r for the dashboard (%s)", name, error)
            return
        with self._names_lock:
            self._names_written.add(name)

    def event_names(self) -> set[str]:
        item = self._call(self._client.get_item, Key=_NAMES_KEY, ConsistentRead=True).get("Item")
        return set(item["names"]["SS"]) if item else set()

    # -- browsing ------------------------------------------------------------------------

    def browse_runs(
        self,
        *,
        workflow_id: str | None = None,
        statuses: set[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        event_filter: Callable[[Event], bool] | None = None,
        cursor: str | None = None,
        limit: int = 50,
        now: datetime | None = None,
        months: int = 24,
        max_examined: int = 20_000,
        with_events: bool = True,
    ) -> RunPage:
        """Runs newest first, created in [since, until), filtered; `cursor` continues a
        previous page. Examines at most `max_examined` run keys per page."""
        found: list[RunRecord] = []
        events: dict[str, Event] = {}
        last_key: str | None = None
        examined = 0
        keys: list[tuple[str, Item]] = []

        def flush() -> bool:
            nonlocal last_key
            runs = {run.run_id: run for run in self._runs_by_keys([key for _, key in keys])}
            wanted = []
            for sort_key, key in keys:
                run = runs.get(key["pk"]["S"].removeprefix("RUN#"))
                last_key = sort_key
                if run is None or (workflow_id and run.workflow_id != workflow_id):
                    continue
                if statuses and run.status.value not in statuses:
                    continue
                wanted.append((sort_key, run))
            keys.clear()
            if not wanted:
                return False
            needed = with_events or event_filter is not None
            triggers = self.events_of([run.run_id for _, run in wanted]) if needed else {}
            for sort_key, run in wanted:
                event = triggers.get(run.run_id)
                if event_filter is not None and (event is None or not event_filter(event)):
                    continue
                found.append(run)
                if event is not None:
                    events[run.run_id] = event
                if len(found) >= limit:
                    last_key = sort_key
                    return True
            return False

        for sort_key, key in self._run_keys(since, until, cursor, now, months):
            keys.append((sort_key, key))
            examined += 1
            if len(keys) >= 100 and flush():
                return RunPage(found, events, last_key)
            if examined >= max_examined:
                break
        if keys and flush():
            return RunPage(found, events, last_key)
        more = examined >= max_examined
        return RunPage(found, events, last_key if more else None)

    def _run_keys(
        self,
        since: datetime | None,
        until: datetime | None,
        cursor: str | None,
        now: datetime | None,
        months: int,
    ) -> Iterator[tuple[str, Item]]:
        top = until or now or datetime.now(UTC)
        if cursor:
            top = min(top, datetime.fromisoformat(cursor.split("#", 1)[0]) + timedelta(seconds=1))
        month = top.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        first = (
            since.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
            if since
            else None
        )
        noted = {month_of(start) for start in self._months_with_runs(months, top)}
        for _ in range(months):
            if first is not None and month < first:
                return
            if month_of(month) not in noted:
                month = (month - timedelta(days=1)).replace(day=1)
                continue
            condition = ""
            values: dict[str, Any] = {}
            upper = cursor or (until.isoformat() if until else None)
            if upper is not None and since is not None:
                condition = " AND g2sk BETWEEN :lo AND :hi"
                values.update({":lo": s(since.isoformat()), ":hi": s(upper)})
            elif upper is not None:
                condition = " AND g2sk < :hi"
                values[":hi"] = s(upper)
            elif since is not None:
                condition = " AND g2sk >= :lo"
                values[":lo"] = s(since.isoformat())
            # The month's shards, merged newest first (infra/dynamo_index.py).
            for item in self.runs_index(month, key_condition=condition, values=values):
                sort_key = item["g2sk"]["S"]
                if upper is not None and sort_key >= upper:
                    continue  # BETWEEN includes its upper bound
                yield sort_key, {"pk": item["pk"], "sk": item["sk"]}
            month = (month - timedelta(days=1)).replace(day=1)

    def _runs_by_keys(self, keys: list[Item]) -> list[RunRecord]:
        return [self._run_from(item) for item in self._batch_get(keys)]

    def events_of(self, run_ids: list[str]) -> dict[str, Event]:
        """The trigger events of these runs, by run id."""
        keys: list[Item] = [{"pk": run_pk(run_id), "sk": s(EVENT_SK)} for run_id in run_ids]
        return {
            item["pk"]["S"].removeprefix("RUN#"): Event.model_validate_json(item["r"]["S"])
            for item in self._batch_get(keys)
        }

    def runs_of(self, run_ids: list[str]) -> dict[str, RunRecord]:
        keys: list[Item] = [{"pk": run_pk(run_id), "sk": s(RUN_SK)} for run_id in run_ids]
        return {run.run_id: run for run in self._runs_by_keys(keys)}

    def recent_events(
        self, names: set[str], *, limit: int = 50, before: datetime | None = None, days: int = 2
    ) -> list[Event]:
        """The most recent logged events of these names, newest first (within `days`)."""
        top = before or datetime.now(UTC)
        found: list[Event] = []
        for name in sorted(names):
            day = top.astimezone(UTC).date()
            taken = 0
            for _ in range(days):
                condition = "pk = :pk"
                extra: dict[str, Any] = {}
                if before is not None:
                    condition += " AND sk < :top"
                    extra[":top"] = s(before.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
                # The day's shards side by side (infra/dynamo_index.py), each newest first.
                queries = [
                    {
                        "KeyConditionExpression": condition,
                        "ExpressionAttributeValues": {":pk": s(pk), **extra},
                        "ScanIndexForward": False,
                        "Limit": limit,
                    }
                    for pk in event_log_pks(name, day)
                ]
                for items in self._first_pages(queries):
                    for item in items:
                        found.append(Event.model_validate_json(item["r"]["S"]))
                        taken += 1
                if taken >= limit:
                    break
                day -= timedelta(days=1)
        epoch = datetime.min.replace(tzinfo=UTC)
        found.sort(key=lambda event: event.ts or epoch, reverse=True)
        return found[:limit]

    def activity_of(self, event_ids: list[str], *, now: datetime) -> dict[str, EventActivity]:
        """What each event did (trigger outcome, waits resolved, runs cancelled), by id."""
        keys: list[Item] = []
        for event_id in dict.fromkeys(event_ids):
            for sk in ("OUTCOME", *_EFFECT_SK.values()):
                keys.append({"pk": s(_event_pk(event_id)), "sk": s(sk)})
        activity: dict[str, EventActivity] = {}
        for item in self._batch_get(keys):
            if int(item.get(TTL_ATTRIBUTE, {"N": "0"})["N"]) <= now.timestamp():
                continue
            data = json.loads(item["r"]["S"])
            sk = item["sk"]["S"]
            if sk == "OUTCOME":
                outcome = EventOutcome.model_validate(data)
                activity.setdefault(outcome.event_id, EventActivity()).outcome = outcome
            else:
                effect = EventEffect.model_validate(data)
                entry = activity.setdefault(effect.event_id, EventActivity())
                if effect.kind == "resolved":
                    entry.resolved = effect.run_ids
                else:
                    entry.cancelled = effect.run_ids
        return activity

    def _batch_get(self, keys: list[Item]) -> list[Item]:
        items: list[Item] = []
        for start in range(0, len(keys), 100):
            pending: dict[str, Any] = {
                self._table: {"Keys": keys[start : start + 100], "ConsistentRead": True}
            }
            while pending:
                try:
                    response = self._client.batch_get_item(RequestItems=pending)
                except (ClientError, BotoCoreError) as error:
                    raise self._translate(error) from None
                items.extend(response.get("Responses", {}).get(self._table, []))
                pending = dict(response.get("UnprocessedKeys") or {})
        return items
