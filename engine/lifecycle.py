"""Run lifecycle operations shared by the handlers and the engine: start, cancel, notify.

Each operation writes state first and performs its side effects (enqueue, timer,
notifying a parent) after, and each is idempotent. A crash between the write and the
side effects is repaired when the message that caused it is delivered again and the
operation runs a second time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple

from engine.control import WorkflowHolds, held_at_start
from engine.errors import ErrorType, FlowConflict, RunConflict, StepConflict
from engine.flow.keys import state_item
from engine.flow.model import RunFlow
from engine.flow.ports import AtVersion, PutItem
from engine.ids import (
    StepKey,
    continued_run_id,
    failure_run_id,
    replay_run_id,
    run_id_for,
    waiter_key,
)
from engine.matching import subscription_key_for
from engine.model import (
    CancelSubscription,
    ErrorInfo,
    InvokeSpec,
    ParentRef,
    RunRecord,
    RunStatus,
    StepKind,
    StepRecord,
    StepStatus,
    WorkMessage,
)
from engine.ports import LoadedRun, Ports, Stored
from engine.settings import KEYED_LOOKBACK_MARGIN
from sdk import RUN_FAILED_EVENT, CancelOn, Event, Workflow
from sdk._paths import MISSING, lookup

log = logging.getLogger("stepline.lifecycle")


class StartedRun(NamedTuple):
    run_id: str
    # False when a run of this id existed already (the same event id started it before).
    created: bool


class Lifecycle:
    def __init__(self, ports: Ports) -> None:
        self.ports = ports
        # Whether a workflow's new runs are held (paused workflows, engine/control.py).
        self.holds = WorkflowHolds(ports.store, ports.clock)

    # -- starting -----------------------------------------------------------------------

    def start_run(
        self,
        workflow: Workflow,
        event: Event,
        *,
        run_id: str | None = None,
        parent: ParentRef | None = None,
        tenant_id: str | None = None,
    ) -> str:
        """Create a QUEUED run (idempotent on its id) and enqueue its first message."""
        return self.start(workflow, event, run_id=run_id, parent=parent, tenant_id=tenant_id).run_id

    def start(
        self,
        workflow: Workflow,
        event: Event,
        *,
        run_id: str | None = None,
        parent: ParentRef | None = None,
        flow: RunFlow | None = None,
        start_delay: int = 0,
        continued_from: str | None = None,
        tenant_id: str | None = None,
    ) -> StartedRun:
        """`start_run`, also saying whether this call created the run or it existed.

        `flow` is the run's flow-control state (engine/flow/), `start_delay` how many
        seconds its start message waits (a negative priority).
        """
        now = self.ports.clock.now()
        if event.ts is None:
            event = event.model_copy(update={"ts": now})
        run_id = run_id or run_id_for(workflow.id, event.id)
        run = self.held_if_paused(
            queued_run(
                run_id,
                workflow,
                event,
                now,
                parent=parent,
                secret=self.ports.clock.token(),
                continued_from=continued_from,
                tenant_id=tenant_id,
                flow=flow,
            )
        )
        subscriptions = self.subscriptions(workflow, run_id, event, now)
        existing = self.ports.store.create_run(run, event, subscriptions)
        if existing is None:
            log.info("started run %s of %s for event %s", run_id, workflow.id, event.id)
        if (existing or run).status is RunStatus.QUEUED:
            # Also re-sent for a run that exists but never started: the first attempt
            # may have crashed between creating it and enqueuing.
            self.ports.queue.enqueue(
                WorkMessage(run_id=run_id, reason="start"), delay_seconds=start_delay
            )
        return StartedRun(run_id, created=existing is None)

    def continue_as_new(self, workflow: Workflow, loaded: LoadedRun, data: dict[str, Any]) -> str:
        """Start the run that continues `loaded` (`ctx.continue_as_new(data)`); its id.

        Idempotent: the continuation's id derives from the run it continues. It inherits
        the event's name and the run's parent (a waiting `step.invoke` gets the output of
        the last run of the chain), and starts with `data` and an empty history.
        """
        run = loaded.run
        new_id = continued_run_id(workflow.id, run.run_id)
        event = Event(name=loaded.event.name, data=data, id=new_id, ts=self.ports.clock.now())
        self.start(workflow, event, run_id=new_id, parent=run.parent, continued_from=run.run_id)
        log.info("run %s continues as new run %s", run.run_id, new_id)
        return new_id

    def ensure_started(self, run_id: str) -> None:
        """Re-send the start message of a run that exists but never started (repair)."""
        run = self.ports.store.get_run(run_id)
        if run is not None and run.status is RunStatus.QUEUED:
            self.ports.queue.enqueue(WorkMessage(run_id=run_id, reason="start"))

    def held_if_paused(self, run: RunRecord) -> RunRecord:
        if not self.holds.held(run.workflow_id):
            return run
        log.info("run %s is held: workflow %s is paused", run.run_id, run.workflow_id)
        return held_at_start(run, run.created_at, None)

    def subscriptions(
        self, workflow: Workflow, run_id: str, event: Event, now: datetime
    ) -> list[CancelSubscription]:
        """The cancel_on rules a new run of `workflow` for `event` registers."""
        subscriptions = []
        for index, rule in enumerate(workflow.cancel_on):
            key = subscription_key_for(workflow.id, index, rule, event)
            if key is None:
                log.warning(
                    "run %s: cancel_on %r matches on %s, which the trigger event %s lacks; "
                    "this rule can never cancel the run",
                    run_id,
                    rule.event,
                    rule.match,
                    event.id,
                )
                continue
            subscriptions.append(
                CancelSubscription(
                    run_id=run_id,
                    workflow_id=workflow.id,
                    index=index,
                    index_key=key,
                    expires_at=now + rule.timeout if rule.timeout else None,
                )
            )
        return subscriptions

    def start_failure_handler(self, workflow: Workflow, run: RunRecord, trigger: Event) -> None:
        handler = workflow.on_failure
        if handler is None:
            return
        error = run.error or ErrorInfo(type=ErrorType.UNKNOWN, message="unknown")
        data = {
            "run_id": run.run_id,
            "workflow_id": run.workflow_id,
            "error": {"type": error.type, "message": error.message},
            "event": trigger.model_dump(mode="json"),
        }
        failure_id = failure_run_id(handler.id, run.run_id)
        event = Event(name=RUN_FAILED_EVENT, data=data, id=failure_id)
        self.start_run(handler, event, run_id=failure_id)

    def replay(self, workflow: Workflow, run_id: str, *, from_step: str | None = None) -> str:
        """Start a new run of a finished run's workflow with the same event.

        With `from_step`, the new run keeps the recorded outcomes of the steps before it
        (they are replayed, not re-run) and runs that step and everything after it anew.
        Raises KeyError for an unknown run or step, ValueError for an unfinished run.
        """
        store = self.ports.store
        loaded = store.load(run_id)
        if loaded is None:
            raise KeyError(f"no run {run_id!r}")
        original = loaded.run
        if not original.status.terminal:
            raise ValueError(
                f"run {run_id} is {original.status}; only a finished run (COMPLETED, FAILED "
                "or CANCELLED) can be replayed. Cancel it first if you mean to restart it."
            )
        kept: list[StepRecord] = []
        if from_step is not None:
            ordered = [loaded.steps[key] for key in sorted(loaded.steps)]
            boundary = next((step.key for step in ordered if step.id == from_step), None)
            if boundary is None:
                known = ", ".join(step.id for step in ordered) or "none"
                raise KeyError(f"run {run_id} has no step {from_step!r} (its steps: {known})")
            for step in ordered:
                if step.key >= boundary or step.status is StepStatus.CANCELLED:
                    break
                if original.passed(step):
                    # A sleep the run went past: its end was never written (see
                    # StepRecord.elapsed), but it is over, and the replay keeps it so.
                    step = step.model_copy(
                        update={"status": StepStatus.COMPLETED, "ended_at": step.wake_at}
                    )
                if not step.settled:
                    break
                kept.append(step.model_copy(update={"indexed": False}))
        now = self.ports.clock.now()
        new_id = replay_run_id(run_id, workflow.id, now.isoformat())
        event = loaded.event
        run = self.held_if_paused(
            queued_run(
                new_id,
                workflow,
                event,
                now,
                replay_of=run_id,
                replay_from=from_step,
                secret=self.ports.clock.token(),
            )
        )
        # Steps first, the run (and its start message) last: a half-made replay is
        # invisible rather than running without the steps it should keep.
        for step in kept:
            store.put_step(new_id, step, expected=None)
        store.create_run(run, event, self.subscriptions(workflow, new_id, event, now))
        if run.status is RunStatus.QUEUED:
            self.ports.queue.enqueue(WorkMessage(run_id=new_id, reason="start"))
        log.info("replaying run %s as %s (kept %d steps)", run_id, new_id, len(kept))
        return new_id

    # -- resolving steps from outside the run -------------------------------------------

    def resolve_step(
        self,
        run_id: str,
        key: StepKey,
        decide: Callable[[StepRecord | None], StepRecord | None],
        *,
        current: Stored | None = None,
    ) -> StepRecord | None:
        """Compare-and-set a step record of another run; `decide` maps current to new.

        `decide` returns None to leave the record alone. Returns the record written, or
        None when nothing was written. `current` is what the caller read (with its
        revision), if it did.
        """
        store = self.ports.store
        known = current is not None
        for _ in range(8):
            if not known:
                current = store.get_step(run_id, key)
            new = decide(current.record if current is not None else None)
            if new is None:
                return None
            placed = new.model_copy(update={"key": key})
            expected = current.revision if current is not None else None
            try:
                store.put_step(run_id, placed, expected=expected)
                return placed
            except StepConflict as conflict:
                current, known = conflict.current, True
        raise RuntimeError(f"step {key} of run {run_id} kept changing; giving up this attempt")

    def wake(self, run_id: str, reason: str) -> None:
        """Tell a run something it waits for has happened (version bump + message)."""
        if self.ports.store.poke(run_id):
            self.ports.queue.enqueue(WorkMessage(run_id=run_id, reason=reason))  # type: ignore[arg-type]

    def notify_parent(self, child: RunRecord) -> None:
        """Settle the parent's `invoke` step with a finished child's outcome, and wake it."""
        parent = child.parent
        if parent is None:
            return
        now = self.ports.clock.now()
        if child.status is RunStatus.COMPLETED:
            outcome: dict[str, object] = {"status": StepStatus.COMPLETED, "output": child.output}
        else:
            error = child.error or ErrorInfo(type=ErrorType.UNKNOWN, message="child run failed")
            outcome = {
                "status": StepStatus.FAILED,
                "error": ErrorInfo(
                    type=error.type,
                    message=f"child run {child.run_id} ({child.workflow_id}) "
                    f"{child.status.lower()}: {error.message}",
                ),
            }

        def decide(current: StepRecord | None) -> StepRecord | None:
            if current is not None and current.status is not StepStatus.WAITING:
                return None
            base = current or StepRecord(
                id=parent.step_id,
                kind=StepKind.INVOKE,
                status=StepStatus.WAITING,
                started_at=child.created_at,
                invoke=InvokeSpec(workflow=child.workflow_id, child_run_id=child.run_id),
            )
            return base.model_copy(update={**outcome, "ended_at": now})

        written = self.resolve_step(parent.run_id, parent.step_key, decide)
        settled_by_us = written is not None
        if not settled_by_us:
            stored = self.ports.store.get_step(parent.run_id, parent.step_key)
            current = stored.record if stored is not None else None
            # Settled by this child earlier, perhaps by an attempt that crashed before
            # waking the parent: wake it again (a spare wake-up is harmless).
            settled_by_us = (
                current is not None
                and current.invoke is not None
                and current.invoke.child_run_id == child.run_id
                and current.status in (StepStatus.COMPLETED, StepStatus.FAILED)
            )
        if settled_by_us:
            self.wake(parent.run_id, "child")

    # -- cancelling ----------------------------------------------------------------------

    def cancel(self, run_id: str, reason: str) -> bool:
        """Cancel a run that has not finished. Returns False if it had already finished.

        Raises KeyError for an unknown run id.
        """
        store = self.ports.store
        for _ in range(8):
            run = store.get_run(run_id)
            if run is None:
                raise KeyError(run_id)
            if run.status.terminal:
                if run.status is RunStatus.CANCELLED:
                    self.clean_up_cancelled(run_id)
                return False
            now = self.ports.clock.now()
            cancelled = run.model_copy(
                update={
                    "status": RunStatus.CANCELLED,
                    "version": run.version + 1,
                    "error": ErrorInfo(type=ErrorType.CANCELLED, message=reason),
                    "ended_at": now,
                    "updated_at": now,
                    "lease": None,
                    "wake_at": None,
                }
            )
            try:
                store.write_run(cancelled, expected_version=run.version)
            except RunConflict:
                continue
            log.info("cancelled run %s: %s", run_id, reason)
            armed = run.armed_at or run.wake_at
            if armed is not None and armed > now:
                self.ports.timers.disarm(run_id, armed)
            self.clean_up_cancelled(run_id)
            return True
        raise RuntimeError(f"run {run_id} kept changing while being cancelled; try again")

    def clean_up_cancelled(self, run_id: str) -> None:
        """Withdraw a cancelled run's waits, cancel its children, tell its parent.

        Idempotent; subscriptions go last so that a redelivered cancelling event can
        still find the run if this was cut off.
        """
        loaded = self.ports.store.load(run_id)
        if loaded is None or loaded.run.status is not RunStatus.CANCELLED:
            return
        run = loaded.run
        now = self.ports.clock.now()

        def withdraw(current: StepRecord | None) -> StepRecord | None:
            """A step of the cancelled run as it must stay: settled and out of the index."""
            if current is None:
                return None
            if current.settled or run.passed(current):
                # Settled (perhaps by a resolver racing the cancel): just leave the index.
                return current.model_copy(update={"indexed": False}) if current.indexed else None
            if current.status in (StepStatus.WAITING, StepStatus.SLEEPING, StepStatus.RETRYING):
                # Also a sleep whose time came but which the run never went past.
                return current.model_copy(
                    update={"status": StepStatus.CANCELLED, "indexed": False, "ended_at": now}
                )
            return None

        for key, step in sorted(loaded.steps.items()):
            if step.kind is StepKind.INVOKE and step.invoke is not None and not step.settled:
                try:
                    self.cancel(step.invoke.child_run_id, f"parent run {run_id} was cancelled")
                except KeyError:
                    pass
            # Re-read and re-decide on a conflict: a resolver that settled a wait between
            # our load and our write must not leave it indexed on a cancelled run.
            self.resolve_step(run_id, key, withdraw, current=loaded.stored(key))
        self._close_batch(run)
        self.notify_parent(run)
        self.ports.store.delete_subscriptions(loaded.subscriptions)

    def _close_batch(self, run: RunRecord) -> None:
        """A run cancelled while its batch was open (by `cancel_on`, a singleton, its
        start deadline or by hand) seals it: the key's next event opens a new batch
        instead of joining a run that will never start (engine/flow/admission.py)."""
        if run.flow is None or run.flow.batch is None:
            return
        key = state_item(run.flow.batch)
        for _ in range(8):
            item = self.ports.flow.get_items([key]).get(key)
            if item is None or item.data.get("run") != run.run_id or item.data.get("sealed"):
                return
            sealed = PutItem(
                key,
                {**item.data, "sealed": True},
                AtVersion(item.version),
                version=item.version + 1,
                expires_at=item.expires_at,
            )
            try:
                self.ports.flow.commit([sealed])
                return
            except FlowConflict:
                continue  # an event joined meanwhile (it is in the cancelled run's batch)

    def cancel_started_run_if_event_seen(self, loaded: LoadedRun, workflow: Workflow) -> bool:
        """At a run's first invocation: did a cancelling event arrive before it started?

        Cancel rules are registered when the run is created, but a cancelling event may
        be handled a moment before that. The event log closes the gap.
        """
        from engine.matching import cancel_matches

        if not loaded.subscriptions:
            return False
        run = loaded.run
        now = self.ports.clock.now()
        since = run.lookback_start
        for subscription in loaded.subscriptions:
            rule = workflow.cancel_on[subscription.index]
            for event in self._cancel_candidates(rule, loaded.event, since, now):
                if event.id == run.event_id:
                    continue
                if cancel_matches(subscription, rule, loaded.event, event, now):
                    return self.cancel(
                        run.run_id, f"cancelled by event {event.name} ({event.id}) via cancel_on"
                    )
        return False

    def _cancel_candidates(
        self, rule: CancelOn, trigger: Event | None, since: datetime, now: datetime
    ) -> list[Event]:
        """The events of `rule.event` since `since` that may cancel a run of `trigger`.

        A cancel rule looks back as a wait does (engine/operations/wait.py): its match path
        is registered as one of the name's wait paths, so every event of the name is also
        kept under the key its value at that path makes (without match: the name's spread
        key); once the path is known for longer than the window, that key alone is read
        instead of every shard of the name's log, which every run start would read.
        """
        known_since = self.ports.index.add_wait_path(rule.event, rule.match, now=now)
        if known_since + KEYED_LOOKBACK_MARGIN <= since and trigger is not None:
            if rule.match is None:
                key = waiter_key(rule.event, None, None)
                return self.ports.events.events_for_key(key, since, now=now, spread=True)
            value = lookup(trigger, rule.match)
            if value is not MISSING:
                key = waiter_key(rule.event, rule.match, value)
                return self.ports.events.events_for_key(key, since, now=now)
        return self.ports.events.events_since(rule.event, since, now=now)


def queued_run(
    run_id: str, workflow: Workflow, event: Event, now: datetime, **extra: Any
) -> RunRecord:
    """A new run of `workflow` for `event`, waiting for its first invocation."""
    return RunRecord(
        run_id=run_id,
        workflow_id=workflow.id,
        status=RunStatus.QUEUED,
        created_at=now,
        updated_at=now,
        event_id=event.id,
        event_name=event.name,
        event_ts=event.ts,
        **extra,
    )
