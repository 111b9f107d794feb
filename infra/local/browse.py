"""Choosing runs: the filters the dashboard and the bulk commands share.

A `RunFilter` names a workflow, statuses, a creation time range and an event-data
query; `select` pages through the runs index newest first (infra/dynamo_operator.py)
and returns the runs that match.

Times: an ISO 8601 instant (`2026-03-02T09:00`, naive means UTC) or a duration ago
(`90m`, `2h`, `7d`). Event-data query: space-separated terms, all of which must hold:
`path=value` compares a field of the trigger event's data (`userId=u1`, `data.userId=u1`,
`customer.tier=gold`; the value is compared as JSON if it parses, else as text), and a
term without `=` must appear in the data's JSON text.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from engine.model import RunRecord, RunStatus
from infra.dynamo import DynamoStore
from infra.dynamo_operator import RunPage
from sdk import Event, parse_duration

ACTIVE = frozenset({"QUEUED", "RUNNING", "SLEEPING", "WAITING"})
FINISHED = frozenset({"COMPLETED", "FAILED", "CANCELLED"})
ALL_STATUSES = tuple(status.value for status in RunStatus)


class FilterError(ValueError):
    """A filter the user wrote cannot be understood (the message says why)."""


def parse_when(text: str | None, now: datetime) -> datetime | None:
    """An instant from ISO 8601 text or a duration ago ("2h"); None for empty text."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    try:
        instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            return now - parse_duration(text, what="time")
        except ValueError:
            raise FilterError(
                f"{text!r} is neither an ISO 8601 time (2026-03-02T09:00) nor a duration "
                "ago (90m, 2h, 7d)"
            ) from None
    return instant if instant.tzinfo is not None else instant.replace(tzinfo=UTC)


def event_matcher(query: str | None) -> Callable[[Event], bool] | None:
    """A predicate on trigger events for the query syntax of the module docstring."""
    if query is None or not query.strip():
        return None
    tests: list[Callable[[Event], bool]] = []
    for term in query.split():
        if "=" in term:
            path, _, raw = term.partition("=")
            keys = [part for part in path.removeprefix("data.").split(".") if part]
            if not keys:
                raise FilterError(f"{term!r}: name a field of the event's data before '='")
            try:
                wanted: object = json.loads(raw)
            except ValueError:
                wanted = raw
            tests.append(_field_test(keys, wanted, raw))
        else:
            tests.append(_text_test(term.lower()))
    return lambda event: all(test(event) for test in tests)


def _field_test(keys: list[str], wanted: object, raw: str) -> Callable[[Event], bool]:
    def test(event: Event) -> bool:
        value: object = event.data
        for key in keys:
            if not isinstance(value, dict) or key not in value:
                return False
            value = value[key]
        return value == wanted or (isinstance(value, str) and value == raw)

    return test


def _text_test(needle: str) -> Callable[[Event], bool]:
    return lambda event: needle in _data_text(event).lower()


def _data_text(event: Event) -> str:
    return json.dumps(event.data, default=str, ensure_ascii=False)


@dataclass
class RunFilter:
    workflow: str | None = None
    statuses: set[str] = field(default_factory=set)
    since: datetime | None = None
    until: datetime | None = None
    query: str | None = None

    @property
    def empty(self) -> bool:
        return not (self.workflow or self.statuses or self.since or self.until or self.query)

    def describe(self) -> str:
        parts = []
        if self.workflow:
            parts.append(f"workflow {self.workflow}")
        if self.statuses:
            parts.append("status " + "|".join(sorted(self.statuses)))
        if self.since:
            parts.append(f"created since {self.since:%Y-%m-%d %H:%M:%S}")
        if self.until:
            parts.append(f"created before {self.until:%Y-%m-%d %H:%M:%S}")
        if self.query:
            parts.append(f"event data {self.query!r}")
        return ", ".join(parts) or "all runs"

    def page(self, store: DynamoStore, *, cursor: str | None = None, limit: int = 50) -> RunPage:
        unknown = self.statuses - set(ALL_STATUSES)
        if unknown:
            raise FilterError(
                f"unknown status {', '.join(sorted(unknown))} (one of {', '.join(ALL_STATUSES)})"
            )
        return store.browse_runs(
            workflow_id=self.workflow or None,
            statuses=self.statuses or None,
            since=self.since,
            until=self.until,
            event_filter=event_matcher(self.query),
            cursor=cursor,
            limit=limit,
        )

    def select(self, store: DynamoStore, *, limit: int = 10_000) -> list[RunRecord]:
        """Every matching run (newest first), at most `limit`."""
        runs: list[RunRecord] = []
        cursor: str | None = None
        while len(runs) < limit:
            page = self.page(store, cursor=cursor, limit=min(500, limit - len(runs)))
            runs.extend(page.runs)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        return runs
