"""Cron ticks: the runs a `stepline/cron` event starts, and the ticks to come.

A tick reaches the trigger handler as an event named `CRON_EVENT` whose data names the
expression and the instant (`{"cron": "0 9 * * MON", "tick": "2026-03-02T08:00:00Z"}`):
EventBridge Scheduler sends it on a deployment (infra/cron_schedules.py keeps one
recurring schedule per distinct expression and time zone of the app), the local
runtime's pump does locally. `start_tick_runs` starts one run for each workflow that
declares a Cron with that expression of which the instant is a tick:

- the run's event is the tick's own: data `{"cron", "tick"}` (the tick in the cron's
  time zone), id `engine.ids.cron_event_id(workflow, expression, zone, tick)`, so a tick
  delivered twice (Scheduler retrying after throttling, SQS redelivering, two local
  pumps, either occurrence of a repeated wall time) starts one run;
- an instant that is no tick of the workflow's Cron starts nothing for it: Scheduler
  fires a superset where EventBridge's syntax cannot say the expression exactly (both
  day fields restricted), and the extra ticks end here, recorded as skipped;
- a tick more than `MAX_TICK_AHEAD` in the future starts nothing: whoever can put an
  event on the bus cannot take a run that is not due yet.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from engine.ids import cron_event_id
from engine.lifecycle import Lifecycle
from engine.model import SkippedWorkflow
from sdk import CRON_EVENT, App, Cron, Event, Workflow

log = logging.getLogger("stepline.cron")

MAX_TICK_AHEAD = timedelta(minutes=5)


@dataclass
class TickRuns:
    """What one tick event did: the runs it started, found, or why it started none."""

    started: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    skipped: list[SkippedWorkflow] = field(default_factory=list)
    reason: str | None = None


def start_tick_runs(app: App, lifecycle: Lifecycle, event: Event, now: datetime) -> TickRuns:
    """Start the runs of a tick event (module docstring); idempotent."""
    outcome = TickRuns()
    expression, instant = _parse(event)
    if expression is None or instant is None:
        outcome.reason = (
            f"a {CRON_EVENT} event needs data {{'cron': <expression>, 'tick': <ISO 8601 "
            f"time>}}; got {sorted(event.data)}"
        )
        return outcome
    if instant > now + MAX_TICK_AHEAD:
        outcome.reason = f"tick {instant.isoformat()} is in the future (now {now.isoformat()})"
        return outcome
    declared = [(w, cron) for w, cron in app.crons() if cron.expression == expression]
    if not declared:
        outcome.reason = (
            f"no workflow in app {app.name!r} has Cron({expression!r}); its schedule is "
            "left from an earlier version of the app until the next deploy syncs them"
        )
        return outcome
    for workflow, cron in declared:
        tick = cron.tick_of(instant)
        if tick is None:
            outcome.skipped.append(
                SkippedWorkflow(
                    workflow_id=workflow.id,
                    reason=f"{instant.isoformat()} is not a tick of {cron!r}",
                )
            )
            continue
        started = lifecycle.start(workflow, tick_event(workflow, cron, tick, received=event.ts))
        (outcome.started if started.created else outcome.existing).append(started.run_id)
    if not outcome.started and not outcome.existing:
        outcome.reason = "; ".join(f"{s.workflow_id}: {s.reason}" for s in outcome.skipped)
    return outcome


def tick_event(
    workflow: Workflow, cron: Cron, tick: datetime, *, received: datetime | None = None
) -> Event:
    """The event a workflow's run for one tick starts with."""
    return Event(
        name=CRON_EVENT,
        data={"cron": cron.expression, "tick": cron.tick_text(tick)},
        id=cron_event_id(workflow.id, cron.expression, cron.tz, tick),
        ts=received,
    )


def _parse(event: Event) -> tuple[str | None, datetime | None]:
    expression, text = event.data.get("cron"), event.data.get("tick")
    if not isinstance(expression, str) or not isinstance(text, str):
        return None, None
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        return None, None
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    return " ".join(expression.split()), instant.astimezone(UTC)


@dataclass(frozen=True)
class Upcoming:
    """The next ticks of one Cron of a workflow (for listings such as `workflows list`)."""

    workflow_id: str
    cron: Cron
    ticks: tuple[datetime, ...]


def upcoming_ticks(app: App, after: datetime, count: int = 3) -> list[Upcoming]:
    """Each Cron of the app with its next `count` ticks after `after`, by workflow id."""
    return [
        Upcoming(workflow.id, cron, tuple(cron.next_ticks(after, count)))
        for workflow, cron in sorted(app.crons(), key=lambda pair: pair[0].id)
    ]
