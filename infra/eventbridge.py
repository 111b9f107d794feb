"""EventBridge: the event bus adapter, and the mapping between `Event` and the wire.

Sending (what users do with plain boto3, and what `EventBridgeBus` does)::

    events.put_events(Entries=[{
        "Source": "my.app",                 # anything; Stepline does not filter on it
        "DetailType": "user/signup",        # the event name
        "Detail": json.dumps({"userId": "u1"}),   # the data: a JSON object
        "EventBusName": "<the stack's bus>",
    }])

Receiving: an EventBridge rule puts the whole event on an SQS queue, so a handler's
record body is `{"id", "detail-type", "source", "time", "detail", ...}`. The event id is
EventBridge's, unless the detail carries `"$stepline": {"id": ...}`, which Stepline adds
for events whose id it chose (send_event, or `Event(id=...)`), so that re-sending one is
recognised as the same event. An id is at most MAX_EVENT_ID_LENGTH characters.

An event's time (`Event.ts`) is when the bus delivered it to our queue: the SQS record's
`SentTimestamp`, which SQS sets and no sender can. The body's `time` (which `PutEvents`
takes from the sender's `Time`) and a `ts` in `$stepline` are claims, and are ignored;
otherwise an event published before a run started could claim a later time and resolve
the run's new wait.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from engine.errors import AccessDeniedError, InvalidRequestError, TransientError
from infra.aws_errors import ACCESS_CODES, TRANSIENT_CODES, aws_error
from sdk import Event

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef

log = logging.getLogger("stepline.eventbridge")

RESERVED_KEY = "$stepline"
MAX_ENTRY_BYTES = 256 * 1024
# Longer ids are refused when sending and when received (README, Limits). Ids enter keys
# only as digests, so this is about what is stored and shown, not about key sizes.
MAX_EVENT_ID_LENGTH = 512
_BATCH = 10


class BadEventError(ValueError):
    """An event Stepline cannot use, received or about to be sent; the message says why."""


class EventTooLargeError(ValueError):
    pass


def check_event_id(event_id: str, *, name: str) -> None:
    """Refuse an id over MAX_EVENT_ID_LENGTH, or one that is not valid text."""
    if len(event_id) > MAX_EVENT_ID_LENGTH:
        raise BadEventError(
            f"event {name!r} has an id of {len(event_id):,} characters; the limit is "
            f"{MAX_EVENT_ID_LENGTH} (MAX_EVENT_ID_LENGTH). Use a shorter id, such as a "
            "digest of the long one."
        )
    try:
        event_id.encode()
    except UnicodeEncodeError:
        raise BadEventError(f"event {name!r} has an id that is not valid Unicode text") from None


def entry_for(event: Event, *, bus: str, source: str) -> PutEventsRequestEntryTypeDef:
    """The put_events entry for an event, checked against EventBridge's 256 KB limit."""
    detail = dict(event.data)
    if event.id:
        check_event_id(event.id, name=event.name)
        detail[RESERVED_KEY] = {"id": event.id}
    entry: PutEventsRequestEntryTypeDef = {
        "Source": source,
        "DetailType": event.name,
        "Detail": json.dumps(detail, separators=(",", ":"), ensure_ascii=False),
        "EventBusName": bus,
    }
    if event.ts:
        entry["Time"] = event.ts
    # EventBridge's own accounting: Time counts 14 bytes, strings their UTF-8 length.
    size = 14 * bool(event.ts) + sum(
        len(entry[key].encode()) for key in ("Source", "DetailType", "Detail")
    )
    if size > MAX_ENTRY_BYTES:
        raise EventTooLargeError(
            f"event {event.name!r} is {size:,} bytes; EventBridge takes at most "
            f"{MAX_ENTRY_BYTES:,} per entry. Put large data in S3 and send a reference."
        )
    return entry


def decode_envelope(body: str | dict[str, Any], *, received_at: datetime) -> Event:
    """The `Event` in an SQS record body that an EventBridge rule delivered.

    `received_at` is the event's time: when SQS received it (the record's
    `SentTimestamp`). The times the body claims are ignored (see the module docstring).
    """
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except json.JSONDecodeError as error:
            raise BadEventError(f"body is not JSON ({error.msg} at char {error.pos})") from None
    if not isinstance(body, dict):
        raise BadEventError(f"body is a JSON {type(body).__name__}, not an EventBridge event")
    name = body.get("detail-type")
    if not isinstance(name, str) or not name.strip():
        raise BadEventError("event has no detail-type (the event name)")
    detail = body.get("detail")
    if not isinstance(detail, dict):
        raise BadEventError(
            f"event {name!r} has a detail of type {type(detail).__name__}; "
            "Detail must be a JSON object"
        )
    data = dict(detail)
    marker = data.pop(RESERVED_KEY, None)
    event_id = body.get("id")
    if isinstance(marker, dict):
        event_id = marker.get("id") or event_id
    if not isinstance(event_id, str) or not event_id:
        raise BadEventError(f"event {name!r} has no id")
    check_event_id(event_id, name=name)
    try:
        return Event(name=name, data=data, id=event_id, ts=received_at)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise BadEventError(f"event {name!r} ({event_id}) is invalid: {problems}") from None


class EventBridgeBus:
    """Implements the EventBus port."""

    def __init__(self, client: EventBridgeClient, *, bus: str, source: str) -> None:
        self._client = client
        self._bus = bus
        self._source = source

    def publish(self, events: Sequence[Event]) -> list[str]:
        ids: list[str] = []
        for start in range(0, len(events), _BATCH):
            chunk = list(events[start : start + _BATCH])
            ids.extend(self._put(chunk))
        return ids

    def _put(self, events: list[Event]) -> list[str]:
        entries = [entry_for(event, bus=self._bus, source=self._source) for event in events]
        assigned: list[str | None] = [event.id or None for event in events]
        todo = list(range(len(entries)))
        for _ in range(5):
            try:
                response = self._client.put_events(Entries=[entries[i] for i in todo])
            except (ClientError, BotoCoreError) as error:
                raise aws_error(
                    error, service="EventBridge", resource=f"event bus {self._bus!r}"
                ) from None
            retry = []
            for index, result in zip(todo, response["Entries"], strict=True):
                if "EventId" in result:
                    assigned[index] = assigned[index] or result["EventId"]
                    continue
                code = str(result.get("ErrorCode") or "")
                refusal = (
                    f"EventBridge refused event {events[index].name!r} on bus {self._bus!r}: "
                    f"{code} {result.get('ErrorMessage') or ''}"
                )
                if code in ACCESS_CODES or code.startswith("NotAuthorized"):
                    raise AccessDeniedError(
                        f"{refusal}. Grant the role events:PutEvents on the bus"
                    )
                if code and code not in TRANSIENT_CODES:
                    raise InvalidRequestError(refusal)
                retry.append(index)
                log.warning("%s; trying again", refusal)
            todo = retry
            if not todo:
                return [event_id for event_id in assigned if event_id is not None]
        raise TransientError(f"EventBridge kept refusing {len(todo)} event(s)")
