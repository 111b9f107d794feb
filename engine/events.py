"""What an incoming event does: start runs, resolve waits, cancel runs.

Each event reaches Stepline once, on one queue (infra/event_rules.py), and `route` does
all three with it. Each part is idempotent: a redelivered event starts no second run,
resolves no wait twice, and repairs a wake-up that a crash cut off; so when one part
fails, the others still run, and the event is delivered again for the failed one.

Cost per event does not depend on how many runs wait on other keys: waits and cancel
rules are found by exact index key (event name, match path, value), never by scanning.
The `if_` expressions evaluated on one event share one budget of evaluation steps
(`engine.matching.expression_budget`), so an event that is costly to match holds its
handler for under a second and fails alone, as no match.

Each entry point also opens the redaction scope of its event (`engine.logcontext`): the
values of its redacted fields never reach the log.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Concatenate, Literal, ParamSpec, TypeVar

from engine.cron import start_tick_runs
from engine.errors import PermanentError, TransientError
from engine.flow.admission import Admission
from engine.ids import waiter_key
from engine.lifecycle import Lifecycle
from engine.logcontext import bind, redacting, remember
from engine.matching import (
    cancel_matches,
    expression_budget,
    subscription_key_for,
    trigger_matches,
    wait_matches,
)
from engine.model import EventOutcome, SkippedWorkflow, StepRecord, StepStatus
from engine.operator_model import EventEffect
from engine.ports import Ports, Stored
from engine.settings import EngineSettings
from sdk import CRON_EVENT, App, Event
from sdk._paths import MISSING, lookup

log = logging.getLogger("stepline.events")

# Events that answer callbacks (engine/callbacks.py) start no run.
CALLBACK_EVENT_PREFIX = "stepline/callback."

R = TypeVar("R")
P = ParamSpec("P")


def _handling_event(
    method: Callable[Concatenate[EventRouter, Event, P], R],
) -> Callable[Concatenate[EventRouter, Event, P], R]:
    """Runs an entry point in its event's redaction scope and expression budget."""

    @functools.wraps(method)
    def handle(router: EventRouter, event: Event, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with (
            redacting(router.settings.redact_fields),
            expression_budget(f"event {event.id} ({event.name})"),
        ):
            remember(event.data)
            return method(router, event, *args, **kwargs)

    return handle


@dataclass(frozen=True)
class Routed:
    """What one event did: the runs it started (or had started), the waits it resolved
    and the runs it cancelled."""

    started: tuple[str, ...]
    resolved: int
    cancelled: int


class EventRouter:
    def __init__(
        self, app: App, ports: Ports, lifecycle: Lifecycle, settings: EngineSettings
    ) -> None:
        self.app = app
        self.ports = ports
        self.lifecycle = lifecycle
        self.settings = settings
        # Idempotency, rate limits, batching, debounce, singletons (engine/flow/).
        self.admission = Admission(ports, lifecycle, settings)

    def matching_workflows(self, event: Event) -> list[str]:
        """Ids of the workflows this event starts (each at most once)."""
        matched: list[str] = []
        for workflow, trigger in self.app.triggered_by(event.name):
            if workflow.id not in matched and trigger_matches(trigger, event, workflow=workflow.id):
                matched.append(workflow.id)
        return matched

    def route(self, event: Event) -> Routed:
        """Everything an event does: start the runs it triggers, resolve the waits it
        matches, cancel the runs whose `cancel_on` it matches.

        The event is recorded once, before waits and cancel rules are looked up (a wait
        or a run created a moment later finds it in its look-back). A part that fails
        does not stop the others; the first error is raised after all ran, so the event
        is delivered again and the parts that had done their work find nothing to redo.
        A Cron's tick only starts runs.
        """
        errors: list[Exception] = []

        def attempt(part: Callable[[], R], default: R) -> R:
            try:
                return part()
            except Exception as error:  # raised below, once the other parts ran
                errors.append(error)
                return default

        no_runs: list[str] = []
        started = attempt(lambda: self.trigger(event), no_runs)
        resolved = cancelled = 0
        if event.name != CRON_EVENT:
            resolved = attempt(lambda: self.resolve_waits(event), 0)
            cancelled = attempt(lambda: self.cancel_matching(event, recorded=True), 0)
        if errors:
            raise errors[0]
        return Routed(tuple(started), resolved, cancelled)

    @_handling_event
    def trigger(self, event: Event) -> list[str]:
        """Start one run per workflow whose trigger matches; returns the run ids.

        A workflow with flow controls admits the event through them (engine/flow/): it
        may start a run, join a batch or a debounced run, or be refused (rate limited, a
        duplicate by idempotency, skipped by a singleton, a key expression that failed).
        Then records what the event did (`EventOutcome`: the runs it started, those its
        id had already started, what the flow controls did, or why it started none) with
        one write, whatever the number of runs, for `stepline send` and anyone who asks
        later. A Cron's tick (`stepline/cron`) starts the runs of its workflows instead
        (engine/cron.py).
        """
        bind(event_id=event.id)
        now = self.ports.clock.now()
        if event.name == CRON_EVENT:
            ticked = start_tick_runs(self.app, self.lifecycle, event, now)
            self._record(event, now, ticked.started, ticked.existing, ticked.skipped, ticked.reason)
            return ticked.started + ticked.existing
        started: list[str] = []
        existing: list[str] = []
        run_ids: list[str] = []
        controlled: list[SkippedWorkflow] = []
        workflow_ids = self.matching_workflows(event)
        for workflow_id in workflow_ids:
            workflow = self.app.get(workflow_id)
            assert workflow is not None
            if not workflow.flow.any:
                result = self.lifecycle.start(workflow, event)
                (started if result.created else existing).append(result.run_id)
                run_ids.append(result.run_id)
                continue
            admitted = self.admission.admit(workflow, event)
            if admitted.kind in ("started", "existing") and admitted.run_id is not None:
                (started if admitted.kind == "started" else existing).append(admitted.run_id)
                run_ids.append(admitted.run_id)
            else:
                controlled.append(
                    SkippedWorkflow(
                        workflow_id=workflow.id,
                        reason=admitted.reason or admitted.kind,
                        control=admitted.control,
                        run_id=admitted.run_id,
                    )
                )
        skipped = controlled + self._skipped(event, workflow_ids)
        reason = None if workflow_ids else self._why_nothing(event, skipped)
        self._record(event, now, started, existing, skipped, reason)
        return run_ids

    def _record(
        self,
        event: Event,
        now: datetime,
        started: list[str],
        existing: list[str],
        skipped: list[SkippedWorkflow],
        reason: str | None,
    ) -> None:
        if reason is not None:
            log.info("event %s (%s) starts no workflow: %s", event.id, event.name, reason)
        outcome = EventOutcome(
            event_id=event.id,
            event_name=event.name,
            at=now,
            started=tuple(started),
            existing=tuple(existing),
            skipped=tuple(skipped),
            reason=reason,
        )
        self.ports.events.record_outcome(outcome, expires_at=now + self.settings.lookback)

    def _skipped(self, event: Event, matched: list[str]) -> list[SkippedWorkflow]:
        """The workflows triggered by this event's name whose trigger conditions failed."""
        skipped: dict[str, SkippedWorkflow] = {}
        for workflow, trigger in self.app.triggered_by(event.name):
            if workflow.id in matched or workflow.id in skipped:
                continue
            condition = trigger.if_.source if trigger.if_ is not None else "(none)"
            skipped[workflow.id] = SkippedWorkflow(
                workflow_id=workflow.id, reason=f"trigger condition not met: {_shorten(condition)}"
            )
        return list(skipped.values())

    def _why_nothing(self, event: Event, skipped: list[SkippedWorkflow]) -> str:
        if event.name.startswith(CALLBACK_EVENT_PREFIX):
            return "it answers a callback (the events function completes the callback it names)"
        if skipped:
            return "; ".join(f"{entry.workflow_id}: {entry.reason}" for entry in skipped)
        names = sorted(
            {
                trigger.event
                for workflow in self.app.workflows.values()
                for trigger in workflow.triggers
            }
        )
        known = ", ".join(_shorten(name, 60) for name in names[:10])
        more = f" and {len(names) - 10} more" if len(names) > 10 else ""
        return (
            f"no workflow in app {self.app.name!r} is triggered by {_shorten(event.name, 128)!r}"
            + (f" (its triggers: {known}{more})" if names else "")
        )

    @_handling_event
    def resolve_waits(self, event: Event) -> int:
        """Resolve the waits this event satisfies; returns how many it resolved."""
        bind(event_id=event.id)
        now = self.ports.clock.now()
        self.ports.events.record_event(event, expires_at=now + self.settings.lookback)
        resolved: list[str] = []
        for path in sorted(self.ports.index.wait_paths(event.name), key=str):
            if path is None:
                key = waiter_key(event.name, None, None)
            else:
                value = lookup(event, path)
                if value is MISSING:
                    continue
                key = waiter_key(event.name, path, value)
            # Kept under its key before looking: a wait registered meanwhile finds it in
            # its look-back (engine/operations/wait.py). The match-less key, which every
            # event of the name shares, is spread over several.
            self.ports.events.record_keyed(
                event, key, expires_at=now + self.settings.lookback, spread=path is None
            )
            for run_id, stored in self.ports.index.find_waiters(key):
                if self._resolve(run_id, stored, event):
                    resolved.append(run_id)
        if resolved:
            log.info("event %s (%s) resolved %d wait(s)", event.id, event.name, len(resolved))
            self._record_effect(event, "resolved", resolved)
        return len(resolved)

    def _record_effect(
        self, event: Event, kind: Literal["resolved", "cancelled"], runs: list[str]
    ) -> None:
        """For the dashboard's events page; best effort (the effect itself is durable)."""
        now = self.ports.clock.now()
        effect = EventEffect(event_id=event.id, kind=kind, run_ids=tuple(runs), at=now)
        try:
            self.ports.events.record_effect(effect, expires_at=now + self.settings.lookback)
        except (TransientError, PermanentError) as error:
            log.warning("event %s: could not record what it did (%s)", event.id, error)

    def _resolve(self, run_id: str, stored: Stored, event: Event) -> int:
        if stored.record.status is not StepStatus.WAITING:
            # What the index found is a copy written before the step itself: a handler
            # that died between the two left a copy that says what the step never became.
            # The step decides (one read, only for a copy that is no longer waiting).
            actual = self.ports.store.get_step(run_id, stored.record.key)
            if actual is None:
                return 0
            stored = actual
        waiter = stored.record
        spec = waiter.wait
        if spec is None:
            return 0
        if waiter.status is StepStatus.COMPLETED:
            if _resolved_by(waiter, event):
                # Resolved by this very event before; the wake-up may have been lost.
                self.lifecycle.wake(run_id, "event")
            return 0
        if waiter.status is not StepStatus.WAITING:
            return 0
        if event.ts is not None and waiter.wake_at is not None and event.ts > waiter.wake_at:
            return 0
        trigger = None
        if spec.if_ is not None and spec.trigger is None:
            # `if_` may read the trigger (`event.*`), stored once as the run's EVENT item.
            trigger = self.ports.store.get_event(run_id)
            if trigger is not None:
                remember(trigger.data)
        if not wait_matches(spec, event, trigger):
            return 0
        now = self.ports.clock.now()
        seen_before = False

        def settle(current: StepRecord | None) -> StepRecord | None:
            nonlocal seen_before
            if current is not None and _resolved_by(current, event):
                # What the index showed was older than the step: this event had already
                # resolved it, and the wake-up may have been lost.
                seen_before = True
            if current is None or current.status is not StepStatus.WAITING:
                return None
            # Stays indexed until the run has seen it (see StepRecord.indexed).
            return current.model_copy(
                update={
                    "status": StepStatus.COMPLETED,
                    "output": event.model_dump(mode="json"),
                    "ended_at": now,
                }
            )

        if self.lifecycle.resolve_step(run_id, waiter.key, settle, current=stored) is None:
            if seen_before:
                self.lifecycle.wake(run_id, "event")
            return 0
        self.lifecycle.wake(run_id, "event")
        return 1

    @_handling_event
    def cancel_matching(self, event: Event, *, recorded: bool = False) -> int:
        """Cancel the runs whose cancel_on rules this event satisfies; returns how many.
        `recorded`: the event is in the event log already (`route` recorded it)."""
        bind(event_id=event.id)
        rules = self.app.cancellations_for(event.name)
        if not rules:
            return 0
        now = self.ports.clock.now()
        if not recorded:
            # Kept so that a run created a moment later still sees it (see Lifecycle).
            self.ports.events.record_event(event, expires_at=now + self.settings.lookback)
        cancelled: list[str] = []
        for workflow, index, rule in rules:
            key = subscription_key_for(workflow.id, index, rule, event)
            if key is None:
                continue
            for subscription in self.ports.index.find_subscriptions(key):
                trigger = subscription.trigger
                try:
                    if rule.if_ is not None and trigger is None:
                        # `if_` may read the trigger, stored once as the run's EVENT item.
                        trigger = self.ports.store.get_event(subscription.run_id)
                        if trigger is None:
                            raise KeyError(subscription.run_id)
                        remember(trigger.data)
                    if not cancel_matches(subscription, rule, trigger, event, now):
                        continue
                    done = self.lifecycle.cancel(
                        subscription.run_id,
                        f"cancelled by event {event.name} ({event.id}) via cancel_on",
                    )
                except KeyError:
                    log.warning("cancel rule points at run %s, which is gone", subscription.run_id)
                    self.ports.store.delete_subscriptions([subscription])
                    continue
                if done:
                    cancelled.append(subscription.run_id)
        if cancelled:
            log.info("event %s (%s) cancelled %d run(s)", event.id, event.name, len(cancelled))
            self._record_effect(event, "cancelled", cancelled)
        return len(cancelled)


def _resolved_by(waiter: StepRecord, event: Event) -> bool:
    output = waiter.output
    return (
        waiter.status is StepStatus.COMPLETED
        and isinstance(output, dict)
        and output.get("id") == event.id
    )


def _shorten(text: str, limit: int = 200) -> str:
    """Keep what is recorded small (the record is one write unit, about 1 KB)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
