"""The recent-events feed: each logged event with what it did, for `stepline events list`
and the dashboard's events page.

Events are read from the event log (every event the events function received, kept for
the lookback window) by name (the names the table has seen, infra/dynamo_operator.py),
and each is joined with what the three handlers did with it: the runs the trigger
started (or why none), the runs whose waits it resolved, the runs it cancelled.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from infra.dynamo import DynamoStore
from infra.dynamo_operator import EventActivity
from sdk import Event


@dataclass(frozen=True)
class EventRow:
    event: Event
    activity: EventActivity

    @property
    def started(self) -> tuple[str, ...]:
        outcome = self.activity.outcome
        return outcome.started if outcome is not None else ()

    def summary(self) -> str:
        """One line: what the event did."""
        parts = []
        outcome = self.activity.outcome
        if outcome is not None:
            parts.append(outcome.summary())
        if self.activity.resolved:
            parts.append("resolved the wait of " + ", ".join(self.activity.resolved))
        if self.activity.cancelled:
            parts.append("cancelled " + ", ".join(self.activity.cancelled))
        return "; ".join(parts) or "not processed yet"

    def to_json(self) -> dict[str, object]:
        outcome = self.activity.outcome
        return {
            "id": self.event.id,
            "name": self.event.name,
            "ts": self.event.ts.isoformat() if self.event.ts else None,
            "data": self.event.data,
            "started": list(outcome.started) if outcome else [],
            "existing": list(outcome.existing) if outcome else [],
            "skipped": [s.model_dump() for s in outcome.skipped] if outcome else [],
            "reason": outcome.reason if outcome else None,
            "resolved_waits_of": list(self.activity.resolved),
            "cancelled": list(self.activity.cancelled),
            "summary": self.summary(),
        }


def recent_events(
    store: DynamoStore,
    *,
    names: set[str] | None = None,
    extra_names: set[str] | None = None,
    limit: int = 50,
    before: datetime | None = None,
) -> list[EventRow]:
    """The most recent events, newest first, each with what it did."""
    wanted = names if names else store.event_names() | (extra_names or set())
    events = store.recent_events(wanted, limit=limit, before=before)
    activity = store.activity_of([event.id for event in events], now=datetime.now(UTC))
    return [EventRow(event, activity.get(event.id, EventActivity())) for event in events]
