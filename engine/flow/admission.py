"""The trigger's half of flow control: admit an event to one workflow, or say why not.

Order, as Inngest's: the keys are evaluated (one that fails refuses the event for this
workflow alone); then idempotency (a second event with the same key value within 24 h
is a duplicate of the first one's run), the rate limit (GCRA; an event over it is
dropped), batching (the event joins its key's open batch, whose run starts when full or
at its timeout), debounce (the event joins its key's pending run, which starts once no
event came for `period`, with the last event) and singleton (a new run is skipped, or
replaces the unfinished run of its key, which is cancelled).

Combined with batching (sdk/_flow.py says it for authors): idempotency and the rate
limit refuse single events before they join a batch, so a duplicate or rate-limited
event is in no batch. Debounce does not take the event then: the event still joins its
batch, and only moves its debounce key's quiet period (`_quiet`: the item holds when the
key's current burst began and when it falls quiet); the gate puts off the start of a
ready batch until the key of the batch's first event is quiet (engine/flow/gate.py). The
singleton is checked by the event that opens a batch, against its key; the run's other
keys (concurrency, throttle, priority, `cancel_on`) are those of that first event too.

Everything an event changes is one commit (engine/flow/ports.py): the controls' items,
the run it creates, the event it adds to a batch, and a marker of what it did. A
redelivered event finds its marker and changes nothing (it re-does the side effects a
crash may have cut off: the start message, the batch's or debounce's timer); a commit
that loses a race to another event is re-decided from what is stored now.

Cost: one BatchGetItem of the items involved and one transaction (two write units per
item), against two PutItems for a workflow without controls. A workflow with only
execution-time controls (throttle, concurrency, priority, timeouts) starts its runs as
usual, with their keys stored on the run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from engine.errors import FlowConflict
from engine.flow import gcra
from engine.flow.keys import (
    KeyFailure,
    TriggerKeys,
    marker_item,
    run_flow,
    state_item,
    trigger_keys,
)
from engine.flow.model import FlowKey, RunFlow, Waiting, for_key
from engine.flow.ports import (
    Absent,
    AddBatchEvent,
    AtVersion,
    Change,
    CreateRun,
    FlowItem,
    ItemKey,
    PutItem,
)
from engine.ids import run_id_for
from engine.lifecycle import Lifecycle, queued_run
from engine.model import RunStatus, WorkMessage
from engine.ports import Ports
from engine.settings import EngineSettings
from sdk import Event, Workflow
from sdk._flow import IDEMPOTENCY_WINDOW, MAX_BATCH_BYTES, _text

log = logging.getLogger("stepline.flow")

#: How long a debounce's or batch's item outlives its due time (a late start still finds it).
_KEEP = timedelta(days=7)


@dataclass(frozen=True)
class Admitted:
    """What one event did for one workflow."""

    kind: Literal["started", "existing", "joined", "refused"]
    run_id: str | None = None
    control: str | None = None
    reason: str | None = None


@dataclass
class _Plan:
    """The decision for one event: what to commit, what to do after, what to say."""

    run_id: str
    result: Admitted
    changes: list[Change] = field(default_factory=list)
    after: list[Callable[[], None]] = field(default_factory=list)


def _expect(item: FlowItem | None) -> Absent | AtVersion:
    return AtVersion(item.version) if item is not None else Absent()


def _next(item: FlowItem | None) -> int:
    return item.version + 1 if item is not None else 1


class Admission:
    def __init__(self, ports: Ports, lifecycle: Lifecycle, settings: EngineSettings) -> None:
        self.ports = ports
        self.lifecycle = lifecycle
        self.settings = settings

    def admit(self, workflow: Workflow, event: Event) -> Admitted:
        now = self.ports.clock.now()
        if event.ts is None:
            event = event.model_copy(update={"ts": now})
        try:
            keys = trigger_keys(workflow, event) if workflow.flow.at_trigger else None
            flow = run_flow(workflow, event, now)
        except KeyFailure as failure:
            log.warning(
                "workflow %r refuses event %s (%s): its %s key expression %r could not be "
                "evaluated (%s)",
                workflow.id,
                event.id,
                event.name,
                failure.control,
                failure.source,
                failure.category,
            )
            return Admitted("refused", control="key", reason=str(failure))
        if keys is None or not any(
            (keys.idempotency, keys.rate_limit, keys.batch, keys.debounce, keys.singleton)
        ):
            return self._start(workflow, event, flow)
        return self._admit(workflow, event, keys, flow, now)

    def _start(self, workflow: Workflow, event: Event, flow: RunFlow | None) -> Admitted:
        delay = max(0, -flow.priority) if flow is not None else 0
        if flow is not None and delay:
            flow = flow.model_copy(update={"waiting": _priority_wait(flow, event)})
        started = self.lifecycle.start(workflow, event, flow=flow, start_delay=delay)
        if started.created and flow is not None and delay and flow.start_by is not None:
            self.ports.timers.arm(started.run_id, flow.start_by)
        return Admitted("started" if started.created else "existing", started.run_id)

    def _admit(
        self,
        workflow: Workflow,
        event: Event,
        keys: TriggerKeys,
        flow: RunFlow | None,
        now: datetime,
    ) -> Admitted:
        marker = marker_item(workflow.id, event.id)
        wanted = [marker] + [
            state_item(key)
            for key in (keys.idempotency, keys.rate_limit, keys.batch, keys.debounce)
            if key is not None
        ]
        if keys.singleton is not None:
            wanted.append(state_item(keys.singleton))
        for _ in range(self.settings.max_reloads):
            items = self.ports.flow.get_items(wanted)
            if marker in items:
                return self._repeated(items[marker])
            plan = self._decide(workflow, event, keys, flow or RunFlow(), items, now)
            if plan.result.kind == "refused":
                return self._refused(workflow, event, plan.result)
            plan.changes.append(
                PutItem(
                    marker,
                    {"run": plan.run_id, "kind": plan.result.kind, "reason": plan.result.reason},
                    Absent(),
                    version=1,
                    expires_at=now + self.settings.lookback,
                )
            )
            try:
                self.ports.flow.commit(plan.changes)
            except FlowConflict as conflict:
                created = [i for i in conflict.failed if isinstance(plan.changes[i], CreateRun)]
                if created and len(created) == len(conflict.failed):
                    # The run exists: this event id started it before (without a marker,
                    # e.g. before the workflow had controls).
                    self._enqueue_if_queued(plan.run_id)
                    return Admitted("existing", plan.run_id)
                continue
            for effect in plan.after:
                effect()
            return plan.result
        raise RuntimeError(
            f"workflow {workflow.id!r}: event {event.id} kept racing other events for its "
            "flow-control state; the event will be redelivered"
        )

    # -- the decision ---------------------------------------------------------------------

    def _decide(
        self,
        workflow: Workflow,
        event: Event,
        keys: TriggerKeys,
        flow: RunFlow,
        items: dict[ItemKey, FlowItem],
        now: datetime,
    ) -> _Plan:
        controls = workflow.flow
        target = run_id_for(workflow.id, event.id)
        plan = _Plan(target, Admitted("started", target))
        if keys.singleton is not None:
            # The run unlocks its key when it finishes (engine/flow/gate.py).
            flow = flow.model_copy(update={"singleton": keys.singleton})
        idempotency = _item(items, keys.idempotency, now)
        if keys.idempotency is not None and idempotency is not None:
            first = idempotency.data["run"]
            return _Plan(
                first,
                Admitted(
                    "refused",
                    first,
                    "idempotency",
                    f"a duplicate of run {first} by idempotency key {keys.idempotency.shown}",
                ),
            )
        if keys.rate_limit is not None and controls.rate_limit is not None:
            limit = controls.rate_limit
            item = items.get(state_item(keys.rate_limit))
            tat = item.data["tat"] if item is not None and item.live(now) else None
            now_us = gcra.micros(now)
            new_tat = gcra.admit(
                tat, now_us, period=limit.period, limit=limit.limit, burst=limit.burst
            )
            if new_tat is None:
                assert tat is not None
                next_at = gcra.instant(
                    gcra.retry_at(
                        tat, now_us, period=limit.period, limit=limit.limit, burst=limit.burst
                    )
                )
                return _Plan(
                    target,
                    Admitted(
                        "refused",
                        None,
                        "rate_limit",
                        f"rate limited: at most {limit.limit} runs per {_text(limit.period)}"
                        f"{for_key(keys.rate_limit.shown)}; the next may start at "
                        f"{next_at:%Y-%m-%d %H:%M:%S}",
                    ),
                )
            plan.changes.append(
                PutItem(
                    state_item(keys.rate_limit),
                    {"tat": new_tat},
                    _expect(item),
                    version=_next(item),
                    expires_at=gcra.instant(new_tat) + limit.period,
                )
            )
        if keys.batch is not None:
            if keys.debounce is not None:
                flow = flow.model_copy(update={"debounce": keys.debounce})
            plan = self._batch(workflow, event, keys.batch, flow, items, now, plan)
            if keys.debounce is not None:
                plan.changes.append(self._quiet(workflow, keys.debounce, items, now))
        elif keys.debounce is not None:
            plan = self._debounce(workflow, event, keys.debounce, flow, items, now, plan)
        else:
            if flow.priority < 0:
                flow = flow.model_copy(update={"waiting": _priority_wait(flow, event)})
            plan.changes.append(self._create(workflow, event, target, flow, now))
            plan.after.append(lambda: self._enqueue_start(target, flow))
        if plan.result.kind == "started" and keys.singleton is not None:
            refused = self._singleton(workflow, keys.singleton, items, now, plan)
            if refused is not None:
                return _Plan(plan.run_id, refused)
        if keys.idempotency is not None:
            plan.changes.append(
                PutItem(
                    state_item(keys.idempotency),
                    {"run": plan.run_id, "event": event.id},
                    _expect(items.get(state_item(keys.idempotency))),
                    version=_next(items.get(state_item(keys.idempotency))),
                    expires_at=now + IDEMPOTENCY_WINDOW,
                )
            )
        return plan

    def _create(
        self, workflow: Workflow, event: Event, run_id: str, flow: RunFlow, now: datetime
    ) -> CreateRun:
        run = queued_run(run_id, workflow, event, now, secret=self.ports.clock.token(), flow=flow)
        # Created PAUSED while its workflow is paused (engine/control.py); resuming starts it.
        run = self.lifecycle.held_if_paused(run)
        subscriptions = self.lifecycle.subscriptions(workflow, run_id, event, now)
        return CreateRun(run, event, tuple(subscriptions))

    def _batch(
        self,
        workflow: Workflow,
        event: Event,
        key: FlowKey,
        flow: RunFlow,
        items: dict[ItemKey, FlowItem],
        now: datetime,
        plan: _Plan,
    ) -> _Plan:
        batch = workflow.flow.batch
        assert batch is not None
        pointer = items.get(state_item(key))
        size = len(event.model_dump_json().encode())
        data = pointer.data if pointer is not None and pointer.live(now) else None
        if (
            data is None
            or data.get("sealed")
            or data["n"] >= batch.max_size
            or data["bytes"] + size > MAX_BATCH_BYTES
        ):
            run_id = plan.run_id
            due = now + batch.timeout
            waiting = Waiting(
                control="batch",
                key=key.shown,
                since=now,
                until=due,
                detail=f"collecting up to {batch.max_size} events",
            )
            run_flow = flow.model_copy(update={"batch": key, "waiting": waiting})
            plan.changes += [
                PutItem(
                    state_item(key),
                    {"run": run_id, "n": 1, "bytes": size, "due": gcra.micros(due)},
                    _expect(pointer),
                    version=_next(pointer),
                    expires_at=due + _KEEP,
                ),
                self._create(workflow, event, run_id, run_flow, now),
                AddBatchEvent(run_id, 1, event),
            ]
            if batch.max_size == 1:
                plan.after.append(lambda: self._enqueue_start(run_id, None))
            else:
                plan.after.append(lambda: self.ports.timers.arm(run_id, due))
                if run_flow.start_by is not None:
                    start_by = run_flow.start_by
                    plan.after.append(lambda: self.ports.timers.arm(run_id, start_by))
            if data is not None and not data.get("sealed") and data["n"] < batch.max_size:
                # The open batch is full by size: it starts now rather than at its timeout.
                previous = str(data["run"])
                plan.after.append(lambda: self._enqueue_start(previous, None))
            return plan
        run_id = str(data["run"])
        position = int(data["n"]) + 1
        assert pointer is not None
        plan.changes += [
            PutItem(
                state_item(key),
                {**data, "n": position, "bytes": data["bytes"] + size},
                AtVersion(pointer.version),
                version=pointer.version + 1,
                expires_at=pointer.expires_at,
            ),
            AddBatchEvent(run_id, position, event),
        ]
        if position >= batch.max_size:
            plan.after.append(lambda: self._enqueue_start(run_id, None))
        return _Plan(
            run_id,
            Admitted(
                "joined",
                run_id,
                "batch_events",
                f"batched into run {run_id} (event {position} of at most {batch.max_size})",
            ),
            plan.changes,
            plan.after,
        )

    def _debounce(
        self,
        workflow: Workflow,
        event: Event,
        key: FlowKey,
        flow: RunFlow,
        items: dict[ItemKey, FlowItem],
        now: datetime,
        plan: _Plan,
    ) -> _Plan:
        debounce = workflow.flow.debounce
        assert debounce is not None
        item = items.get(state_item(key))
        data = item.data if item is not None and item.live(now) else None
        if data is None or data.get("started"):
            run_id = plan.run_id
            due = now + min(debounce.period, debounce.timeout or debounce.period)
            latest = now + debounce.timeout if debounce.timeout is not None else None
            waiting = Waiting(
                control="debounce",
                key=key.shown,
                since=now,
                detail=f"starts {_text(debounce.period)} after the last event"
                + (f", at the latest at {latest:%Y-%m-%d %H:%M:%S}" if latest else ""),
            )
            run_flow = flow.model_copy(update={"debounce": key, "waiting": waiting})
            plan.changes += [
                PutItem(
                    state_item(key),
                    {
                        "run": run_id,
                        "first": gcra.micros(now),
                        "due": gcra.micros(due),
                        "event": event.model_dump(mode="json"),
                    },
                    _expect(item),
                    version=_next(item),
                    expires_at=due + _KEEP,
                ),
                self._create(workflow, event, run_id, run_flow, now),
            ]
            plan.after.append(lambda: self.ports.timers.arm(run_id, due))
            if run_flow.start_by is not None:
                start_by = run_flow.start_by
                plan.after.append(lambda: self.ports.timers.arm(run_id, start_by))
            return plan
        assert item is not None
        run_id = str(data["run"])
        last = Event.model_validate(data["event"])
        joined = Admitted("joined", run_id, "debounce", f"debounced into run {run_id}")
        if last.ts is not None and event.ts is not None and event.ts < last.ts:
            # An older event, delivered late: the run keeps the later one it has.
            return _Plan(run_id, joined)
        first = gcra.instant(int(data["first"]))
        due = now + debounce.period
        if debounce.timeout is not None:
            due = min(due, first + debounce.timeout)
        previous_due = gcra.instant(int(data["due"]))
        changes: list[Change] = [
            PutItem(
                state_item(key),
                {**data, "due": gcra.micros(due), "event": event.model_dump(mode="json")},
                AtVersion(item.version),
                version=item.version + 1,
                expires_at=due + _KEEP,
            )
        ]

        def rearm() -> None:
            self.ports.timers.arm(run_id, due)
            if previous_due != due:
                self.ports.timers.disarm(run_id, previous_due)

        return _Plan(run_id, joined, changes, [rearm])

    def _quiet(
        self,
        workflow: Workflow,
        key: FlowKey,
        items: dict[ItemKey, FlowItem],
        now: datetime,
    ) -> PutItem:
        """A batched event's debounce: its key is quiet `period` after this event, at
        the latest `timeout` after the first event of its burst (see the docstring)."""
        debounce = workflow.flow.debounce
        assert debounce is not None
        item = items.get(state_item(key))
        live = item is not None and item.live(now) and gcra.instant(int(item.data["due"])) > now
        first = gcra.instant(int(item.data["first"])) if live and item is not None else now
        due = now + debounce.period
        if debounce.timeout is not None:
            due = max(now, min(due, first + debounce.timeout))
        return PutItem(
            state_item(key),
            {"first": gcra.micros(first), "due": gcra.micros(due)},
            _expect(item),
            version=_next(item),
            expires_at=due + _KEEP,
        )

    def _singleton(
        self,
        workflow: Workflow,
        key: FlowKey,
        items: dict[ItemKey, FlowItem],
        now: datetime,
        plan: _Plan,
    ) -> Admitted | None:
        singleton = workflow.flow.singleton
        assert singleton is not None
        lock = items.get(state_item(key))
        holder = str(lock.data["run"]) if lock is not None and lock.live(now) else None
        if holder is not None and holder != plan.run_id:
            current = self.ports.store.get_run(holder)
            if current is not None and not current.status.terminal:
                if singleton.mode == "skip":
                    return Admitted(
                        "refused",
                        holder,
                        "singleton",
                        f"skipped by singleton: run {holder}{for_key(key.shown)} has not finished",
                    )
                self.lifecycle.cancel(
                    holder, f"replaced by run {plan.run_id} (singleton, mode 'cancel')"
                )
        plan.changes.append(
            PutItem(state_item(key), {"run": plan.run_id}, _expect(lock), version=_next(lock))
        )
        return None

    # -- results ----------------------------------------------------------------------------

    def _refused(self, workflow: Workflow, event: Event, result: Admitted) -> Admitted:
        if result.control in ("rate_limit", "singleton"):
            # The run may exist from before the workflow had these controls (an event
            # redelivered across a deploy): that is what the event did, not a refusal.
            existing = self.ports.store.get_run(run_id_for(workflow.id, event.id))
            if existing is not None:
                return Admitted("existing", existing.run_id)
        log.info(
            "event %s (%s) starts no run of %s: %s",
            event.id,
            event.name,
            workflow.id,
            result.control,
        )
        return result

    def _repeated(self, marker: FlowItem) -> Admitted:
        """A redelivered event: what it did before, with its side effects re-done."""
        run_id = str(marker.data["run"])
        kind = marker.data.get("kind", "started")
        self._enqueue_if_queued(run_id)
        if kind == "started":
            return Admitted("existing", run_id)
        control = "batch_events" if "batched" in str(marker.data.get("reason")) else "debounce"
        return Admitted("joined", run_id, control, marker.data.get("reason"))

    def _enqueue_if_queued(self, run_id: str) -> None:
        run = self.ports.store.get_run(run_id)
        if run is not None and run.status is RunStatus.QUEUED and run.invoked_at is None:
            # The gate re-arms a debounce's or batch's timer for a "start" it gets early.
            self.ports.queue.enqueue(WorkMessage(run_id=run_id, reason="start"))

    def _enqueue_start(self, run_id: str, flow: RunFlow | None) -> None:
        delay = max(0, -flow.priority) if flow is not None else 0
        self.ports.queue.enqueue(WorkMessage(run_id=run_id, reason="start"), delay_seconds=delay)


def _item(items: dict[ItemKey, FlowItem], key: FlowKey | None, now: datetime) -> FlowItem | None:
    if key is None:
        return None
    item = items.get(state_item(key))
    return item if item is not None and item.live(now) else None


def _priority_wait(flow: RunFlow, event: Event) -> Waiting:
    assert flow.not_before is not None
    return Waiting(
        control="priority",
        key="",
        since=event.ts or flow.not_before,
        until=flow.not_before,
        detail=f"priority {flow.priority} delays its start by {-flow.priority}s",
    )
