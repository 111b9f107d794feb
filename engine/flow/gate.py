"""The runner's half of flow control: when a run may start, and the slots it holds.

`Runner.handle` calls, in order:

1. `cancel_if_overdue`: `Timeouts` (a QUEUED run with no step past `start_by`, any
   unfinished run past `finish_by`) cancel the run, whatever the message.
2. `prepare`, before the claim, for a run that has not got past its start controls:
   a negative priority's delay, the debounce (not before its due time; then it closes
   and the run takes the last event), the batch (not before it is full or due, and,
   with a debounce, not before the debounce key of its first event is quiet; then it
   is sealed) and the throttle (the run reserves the next start the GCRA allows; if that
   is later it waits for it, QUEUED, with a timer). Returns None when the run waits, or
   the changes that must commit with the claim (closing the debounce, sealing the batch,
   the throttle's reservation): `claim` writes them and the claim in one transaction, so
   a duplicate delivery, whose claim fails, changes nothing.
3. `acquire`, after the claim: a slot of every concurrency limit (engine/flow/slots.py).
   A run that cannot have one queues for it, is written back QUEUED, and stops.
4. `Holding.release` once the invocation ends (also when it suspends: a sleeping run
   holds no slot), and `finished` when the run ends (its singleton key is unlocked).

A message that reaches a run the gate does not apply to (`on_stray`: a slot granted to a
run that finished, or a key's safety timer aimed at a run served meanwhile) tends that
run's queues instead, so no slot and no queued run is left behind. A workflow without
flow controls costs nothing here: no read and no write.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.errors import ErrorType, FlowConflict, RunConflict
from engine.flow import gcra
from engine.flow.keys import KeyFailure, _concurrency_ref, run_flow, state_item
from engine.flow.model import RunFlow, Waiting
from engine.flow.ports import (
    Absent,
    AtVersion,
    Change,
    DeleteItem,
    HeldBy,
    PutItem,
    SetRunEvent,
    WriteRun,
)
from engine.flow.slots import Held, Limit, Slots
from engine.lifecycle import Lifecycle
from engine.model import ErrorInfo, RunRecord, RunStatus, WorkMessage
from engine.ports import LoadedRun, Ports
from engine.settings import EngineSettings
from sdk import Event, Workflow
from sdk._flow import _text

log = logging.getLogger("stepline.flow")


@dataclass
class Prepared:
    """What the claim carries: run fields, changes committed with it, a new event."""

    update: dict[str, Any] = field(default_factory=dict)
    changes: list[Change] = field(default_factory=list)
    event: Event | None = None
    batch_size: int | None = None
    fail: ErrorInfo | None = None


@dataclass
class Holding:
    """The slots one invocation holds; renewed with its lease, released at its end."""

    slots: Slots | None = None
    held: list[Held] = field(default_factory=list)
    clock: Callable[[], datetime] | None = None

    def renew(self, expires_at: datetime) -> None:
        assert self.slots is not None or not self.held
        for held in self.held:
            assert self.slots is not None
            self.slots.renew(held, expires_at)

    def release(self) -> None:
        if not self.held:
            return
        assert self.slots is not None and self.clock is not None
        now = self.clock()
        for held in self.held:
            try:
                self.slots.release(held, now)
            except Exception as error:
                # It expires with the lease instead; the key's safety timer finds it.
                log.warning("could not release concurrency slot %s (%s)", held.key.space, error)
        self.held = []


NOTHING = Holding()


class FlowGate:
    def __init__(self, ports: Ports, lifecycle: Lifecycle, settings: EngineSettings) -> None:
        self.ports = ports
        self.lifecycle = lifecycle
        self.settings = settings
        self.slots = Slots(ports, grant_for=settings.lease_duration)

    # -- timeouts ----------------------------------------------------------------------------

    def cancel_if_overdue(self, loaded: LoadedRun, now: datetime) -> bool:
        run, flow = loaded.run, loaded.run.flow
        if flow is None or run.status.terminal:
            return False
        reason = None
        if (
            flow.start_by is not None
            and now >= flow.start_by
            and run.status is RunStatus.QUEUED
            and not loaded.steps
        ):
            reason = f"not started by {flow.start_by:%Y-%m-%d %H:%M:%S} (Timeouts start)"
        elif flow.finish_by is not None and now >= flow.finish_by:
            reason = f"not finished by {flow.finish_by:%Y-%m-%d %H:%M:%S} (Timeouts finish)"
        if reason is None:
            return False
        log.info("run %s timed out: %s", run.run_id, reason)
        self.lifecycle.cancel(run.run_id, reason)
        return True

    # -- before the claim --------------------------------------------------------------------

    def prepare(
        self, loaded: LoadedRun, workflow: Workflow | None, message: WorkMessage, now: datetime
    ) -> Prepared | None:
        run = loaded.run
        if workflow is None or (run.flow is None and not workflow.flow.any):
            return Prepared()
        try:
            flow = run_flow(workflow, loaded.event, run.created_at, run.flow)
        except KeyFailure as failure:
            log.warning(
                "run %s of %r: its %s key expression %r could not be evaluated (%s)",
                run.run_id,
                workflow.id,
                failure.control,
                failure.source,
                failure.category,
            )
            return Prepared(fail=ErrorInfo(type=ErrorType.FLOW_KEY, message=str(failure)))
        assert flow is not None
        prepared = Prepared(update={"flow": flow})
        if run.status is RunStatus.QUEUED and not loaded.steps and not _admitted(run):
            if flow.not_before is not None and now < flow.not_before:
                # A delayed start message may be on its way, but not for a run woken by
                # its batch's or debounce's timer, nor for one held when it came (a paused
                # run drops it, and its resume comes early): a timer at that time, then
                # (a duplicate wake-up finds the run started and changes nothing).
                self.ports.timers.arm(run.run_id, flow.not_before)
                return None
            for step in (self._debounce, self._batch, self._throttle):
                if not step(loaded, workflow, flow, message, now, prepared):
                    return None
            flow = prepared.update["flow"]
        timeouts = workflow.flow.timeouts
        if timeouts is not None and timeouts.finish is not None and flow.finish_by is None:
            flow = flow.model_copy(update={"finish_by": now + timeouts.finish})
        prepared.update["flow"] = flow.model_copy(update={"waiting": None})
        return prepared

    def _early(self, message: WorkMessage, run_id: str, due: datetime) -> None:
        """A run woken before its start is due: re-arm its timer if this was it (or a
        redelivered event's nudge); a stale timer is just dropped."""
        if (message.reason == "timer" and message.at == due) or message.reason == "start":
            self.ports.timers.arm(run_id, due)

    def _debounce(
        self,
        loaded: LoadedRun,
        workflow: Workflow,
        flow: RunFlow,
        message: WorkMessage,
        now: datetime,
        prepared: Prepared,
    ) -> bool:
        if flow.debounce is None or flow.batch is not None:
            return True  # a batched run's debounce is its batch's (`_quiet`)
        key = state_item(flow.debounce)
        item = self.ports.flow.get_items([key]).get(key)
        run_id = loaded.run.run_id
        if item is None or item.data.get("run") != run_id or item.data.get("started"):
            return True  # closed (by this run's earlier claim) or gone: start as it is
        due = gcra.instant(int(item.data["due"]))
        if now < due:
            self._early(message, run_id, due)
            return False
        last = Event.model_validate(item.data["event"])
        prepared.changes += [
            PutItem(
                key,
                {**item.data, "started": True},
                AtVersion(item.version),
                version=item.version + 1,
                expires_at=item.expires_at,
            ),
            SetRunEvent(run_id, last),
        ]
        prepared.event = last
        prepared.update.update(event_id=last.id, event_name=last.name, event_ts=last.ts)
        return True

    def _batch(
        self,
        loaded: LoadedRun,
        workflow: Workflow,
        flow: RunFlow,
        message: WorkMessage,
        now: datetime,
        prepared: Prepared,
    ) -> bool:
        batch = workflow.flow.batch
        if flow.batch is None or batch is None:
            return True
        key = state_item(flow.batch)
        item = self.ports.flow.get_items([key]).get(key)
        run_id = loaded.run.run_id
        if item is None or item.data.get("run") != run_id or item.data.get("sealed"):
            # Another batch has opened since (this one was full): it holds what it holds.
            return True
        due = gcra.instant(int(item.data["due"]))
        if int(item.data["n"]) < batch.max_size and now < due:
            self._early(message, run_id, due)
            return False
        if not self._quiet(loaded, workflow, flow, now):
            return False
        prepared.changes.append(
            PutItem(
                key,
                {**item.data, "sealed": True},
                AtVersion(item.version),
                version=item.version + 1,
                expires_at=item.expires_at,
            )
        )
        prepared.batch_size = int(item.data["n"])
        return True

    def _quiet(self, loaded: LoadedRun, workflow: Workflow, flow: RunFlow, now: datetime) -> bool:
        """A ready batch with a debounce: whether the debounce key of its first event is
        quiet (engine/flow/admission.py). If not, the run waits QUEUED for it, with a
        timer for when it falls quiet, armed before the wait is written (a redelivery
        after a crash in between arms it again; a wait already written has its timer)."""
        debounce = workflow.flow.debounce
        if flow.debounce is None or debounce is None:
            return True
        key = state_item(flow.debounce)
        item = self.ports.flow.get_items([key]).get(key)
        if item is None or not item.live(now):
            return True
        due = gcra.instant(int(item.data["due"]))
        if now >= due:
            return True
        run, before = loaded.run, flow.waiting
        if before is not None and before.control == "debounce" and before.until == due:
            return False  # it waits already, and its timer for `due` is armed
        self.ports.timers.arm(run.run_id, due)
        waiting = Waiting(
            control="debounce",
            key=flow.debounce.shown,
            since=before.since if before is not None else now,
            until=due,
            detail=f"the batch is ready; it starts {_text(debounce.period)} after the last "
            "event of its first event's key",
        )
        queued = run.model_copy(
            update={
                "version": run.version + 1,
                "updated_at": now,
                "flow": flow.model_copy(update={"waiting": waiting}),
            }
        )
        try:
            self.ports.store.write_run(queued, expected_version=run.version)
        except RunConflict:
            pass  # changed meanwhile (a duplicate delivery, a pause): its timer is armed
        return False

    def _throttle(
        self,
        loaded: LoadedRun,
        workflow: Workflow,
        flow: RunFlow,
        message: WorkMessage,
        now: datetime,
        prepared: Prepared,
    ) -> bool:
        throttle = workflow.flow.throttle
        run = loaded.run
        if throttle is None or flow.throttle is None:
            return True
        if flow.throttled_until is not None:
            if now >= flow.throttled_until:
                return True
            self._early(message, run.run_id, flow.throttled_until)
            return False
        key = state_item(flow.throttle)
        item = self.ports.flow.get_items([key]).get(key)
        tat = int(item.data["tat"]) if item is not None and item.live(now) else None
        start, new_tat = gcra.reserve(
            tat,
            gcra.micros(now),
            period=throttle.period,
            limit=throttle.limit,
            burst=throttle.burst,
        )
        starts_at = gcra.instant(start)
        if flow.start_by is not None and starts_at >= flow.start_by:
            # It could not start in time: cancelled now rather than wasting the start.
            self.lifecycle.cancel(
                run.run_id,
                f"would start at {starts_at:%Y-%m-%d %H:%M:%S} (throttle), after its "
                f"Timeouts start deadline {flow.start_by:%Y-%m-%d %H:%M:%S}",
            )
            return False
        reserve = PutItem(
            key,
            {"tat": new_tat},
            AtVersion(item.version) if item is not None else Absent(),
            version=(item.version + 1) if item is not None else 1,
            expires_at=gcra.instant(new_tat) + throttle.period,
        )
        reserved = flow.model_copy(update={"throttled_until": starts_at})
        if start <= gcra.micros(now):
            prepared.changes.append(reserve)
            prepared.update["flow"] = reserved
            return True
        waiting = Waiting(
            control="throttle",
            key=flow.throttle.shown,
            since=now,
            until=starts_at,
            detail=f"at most {throttle.limit} starts per {_text(throttle.period)}",
        )
        queued = run.model_copy(
            update={
                "version": run.version + 1,
                "updated_at": now,
                "flow": reserved.model_copy(update={"waiting": waiting}),
            }
        )
        try:
            self.ports.flow.commit([reserve, WriteRun(queued, run.version)])
        except FlowConflict:
            return False  # a duplicate delivery reserved first, or the run changed
        self.ports.timers.arm(run.run_id, starts_at)
        if flow.start_by is not None and run.flow is not None and run.flow.waiting is None:
            self.ports.timers.arm(run.run_id, flow.start_by)
        return False

    def claim(self, loaded: LoadedRun, claimed: RunRecord, prepared: Prepared) -> None:
        """Write the claim, with the changes `prepare` made part of it; RunConflict if the
        run changed (another delivery claimed it) or a flow item changed meanwhile."""
        expected = loaded.run.version
        if not prepared.changes:
            self.ports.store.write_run(claimed, expected_version=expected)
            return
        changes = [*prepared.changes, WriteRun(claimed, expected)]
        try:
            self.ports.flow.commit(changes)
        except FlowConflict as conflict:
            raise RunConflict(conflict.runs.get(len(changes) - 1)) from None

    # -- concurrency -------------------------------------------------------------------------

    def limits(self, run: RunRecord, workflow: Workflow | None) -> list[Limit]:
        if workflow is None or run.flow is None or not workflow.flow.concurrency:
            return []
        keys = {key.ref: key for key in run.flow.concurrency}
        return [
            Limit(keys[_concurrency_ref(limit)], limit.limit)
            for limit in workflow.flow.concurrency
            if _concurrency_ref(limit) in keys
        ]

    def acquire(
        self, loaded: LoadedRun, workflow: Workflow | None, before: RunRecord
    ) -> Holding | None:
        """A slot of every concurrency limit for the claimed run, or None: then it is
        queued for the first it could not have and written back QUEUED."""
        run = loaded.run
        limits = self.limits(run, workflow)
        if not limits:
            return NOTHING
        now = self.ports.clock.now()
        queued = before.flow is not None and before.flow.waiting is not None
        held: list[Held] = []
        for limit in limits:
            slot = self.slots.take(run, limit, now)
            if slot is None:
                # Queue, then look once more: a slot freed between the look and the queueing
                # went to the queue's head (perhaps this run) rather than to nobody.
                self.slots.enqueue(run, limit)
                self.slots.tend(limit, now)
                slot = self.slots.take(run, limit, now)
                if slot is None:
                    holding = Holding(self.slots, held, self.ports.clock.now)
                    holding.release()
                    self._wait(loaded, limit, before, now)
                    return None
                queued = True
            held.append(slot)
        if queued:
            for limit in limits:
                self.slots.dequeue(run, limit)
        return Holding(self.slots, held, self.ports.clock.now)

    def _wait(self, loaded: LoadedRun, limit: Limit, before: RunRecord, now: datetime) -> None:
        run = loaded.run
        assert run.flow is not None
        waiting = Waiting(
            control="concurrency",
            key=limit.key.shown,
            since=now,
            detail=f"at most {limit.limit} at once",
        )
        queued = run.model_copy(
            update={
                "status": RunStatus.QUEUED,
                "version": run.version + 1,
                "updated_at": now,
                "lease": None,
                "flow": run.flow.model_copy(
                    update={
                        "waiting": waiting,
                        "finish_by": before.flow.finish_by if before.flow else None,
                    }
                ),
            }
        )
        try:
            self.ports.store.write_run(queued, expected_version=run.version)
        except RunConflict:
            return  # cancelled meanwhile: its queue entry is passed over when reached
        loaded.run = queued
        log.info("run %s waits for a concurrency slot of %s", run.run_id, limit.key.space)
        first_wait = before.flow is None or before.flow.waiting is None
        if first_wait and run.flow.start_by is not None and not loaded.steps:
            self.ports.timers.arm(run.run_id, run.flow.start_by)

    # -- messages the gate does not apply to ------------------------------------------------

    def on_stray(self, run: RunRecord, workflow: Workflow | None, message: WorkMessage) -> None:
        """A "flow" or timer message for a run not waiting to start: hand on what was
        granted to it if it will not take it, and tend its keys' queues."""
        if message.reason not in ("flow", "timer"):
            return
        limits = self.limits(run, workflow)
        if not limits:
            return
        now = self.ports.clock.now()
        for limit in limits:
            if run.status is RunStatus.RUNNING:
                self.slots.tend(limit, now)
            else:
                self.slots.pass_on(run.run_id, limit, now)

    def finished(self, run: RunRecord) -> None:
        """A run ended: its singleton key is free again (if it still holds it)."""
        if run.flow is None or run.flow.singleton is None:
            return
        try:
            self.ports.flow.commit(
                [DeleteItem(state_item(run.flow.singleton), HeldBy(run_id=run.run_id))]
            )
        except FlowConflict:
            pass  # another run holds it now


def _admitted(run: RunRecord) -> bool:
    """Whether the run got past its start controls (debounce, batch, throttle) already."""
    flow = run.flow
    return flow is not None and flow.waiting is not None and flow.waiting.control == "concurrency"
