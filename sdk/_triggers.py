"""Declarations attached to a workflow: what starts it and what cancels it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sdk._cron import CRON_EVENT, looks_like_schedule, schedule_refusal
from sdk._duration import Duration, parse_duration
from sdk._errors import WorkflowDefinitionError
from sdk._expression import Expression
from sdk._paths import check_match_path


@dataclass(frozen=True, init=False)
class Trigger:
    """Start a run for each event named `event`, optionally only when `if_` holds.

    `if_` is a CEL expression over `event`, the incoming event:
    `Trigger("user/signup", if_="event.data.plan == 'pro'")`.
    """

    event: str
    if_: Expression | None

    def __init__(self, event: str, *, if_: str | None = None) -> None:
        if not isinstance(event, str) or not event.strip():
            raise WorkflowDefinitionError(
                f"Trigger: event name {event!r} must be a non-empty string"
            )
        if looks_like_schedule(event):
            raise WorkflowDefinitionError(f"Trigger: {schedule_refusal(event)}")
        if event == CRON_EVENT:
            raise WorkflowDefinitionError(
                f"Trigger: {CRON_EVENT!r} is the event of Cron triggers; declare the schedule "
                'itself: trigger=Cron("0 9 * * *", tz="UTC")'
            )
        object.__setattr__(self, "event", event)
        what = f"Trigger({event!r})"
        object.__setattr__(self, "if_", Expression(if_, what=what) if if_ is not None else None)


@dataclass(frozen=True, init=False)
class CancelOn:
    """Cancel a run when an event named `event` arrives that belongs to it.

    `match="data.userId"` means the cancelling event's `data.userId` equals the triggering
    event's. `if_` adds a CEL condition over `event` (the trigger) and `async` (the
    cancelling event). `timeout` limits how long after the run starts the rule applies.
    """

    event: str
    match: str | None
    if_: Expression | None
    timeout: timedelta | None

    def __init__(
        self,
        event: str,
        *,
        match: str | None = None,
        if_: str | None = None,
        timeout: Duration | None = None,
    ) -> None:
        if not isinstance(event, str) or not event.strip():
            raise WorkflowDefinitionError(
                f"CancelOn: event name {event!r} must be a non-empty string"
            )
        what = f"CancelOn({event!r})"
        object.__setattr__(self, "event", event)
        object.__setattr__(self, "match", check_match_path(match, what=what) if match else None)
        object.__setattr__(self, "if_", Expression(if_, what=what) if if_ is not None else None)
        object.__setattr__(
            self,
            "timeout",
            parse_duration(timeout, what=f"{what} timeout") if timeout is not None else None,
        )
