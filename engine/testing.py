"""In-memory fakes of the ports, for unit tests of the pure engine.

They keep the contracts of the real adapters (compare-and-set on run versions and on
step revisions, conflicts carrying what is stored) without any AWS. A step's revision is
a counter here: each write of a step makes a new one, whatever the record holds. Integration tests use
moto and the real adapters instead; these exist so the replay core can be tested in
microseconds, and property-tested over thousands of shapes.

`FakeCluster` wires them to a `Runner` and an `EventRouter` and pumps the fake queue:
the same loop LocalRuntime runs over SQS, without the transport.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from engine.clock import ManualClock
from engine.errors import RunConflict, StepConflict
from engine.events import EventRouter
from engine.flow.memory import InMemoryFlowStore
from engine.ids import StepKey
from engine.model import (
    CancelSubscription,
    CurrentStep,
    Delivery,
    EventOutcome,
    Lease,
    RunRecord,
    RunStatus,
    StepRecord,
    WorkMessage,
)
from engine.operator_model import EventEffect, WorkflowControl
from engine.ports import LoadedRun, Ports, Revision, Stored
from engine.runner import Runner
from engine.settings import EngineSettings
from sdk import App, Event


class InMemoryStore:
    """RunStore + MatchIndex + EventLog in dictionaries."""

    def __init__(self) -> None:
        self.runs: dict[str, RunRecord] = {}
        self.events: dict[str, Event] = {}
        # run id -> step key (its text, as a store keys it) -> record, and its revision.
        self.steps: dict[str, dict[str, StepRecord]] = {}
        self.revisions: dict[str, dict[str, Revision]] = {}
        self._revision = itertools.count(1)
        self.subscriptions: dict[str, list[CancelSubscription]] = {}
        self.paths: dict[str, set[str | None]] = {}
        self.path_known_since: dict[tuple[str, str | None], datetime] = {}
        self.log: list[Event] = []
        self.keyed_log: dict[str, list[Event]] = {}
        self.outcomes: dict[str, tuple[EventOutcome, datetime]] = {}
        # run id -> position -> event, for batched runs (engine/flow/memory.py adds them).
        self.batch_events: dict[str, dict[int, Event]] = {}
        self.controls: dict[str, WorkflowControl] = {}
        self.effects: dict[tuple[str, str], EventEffect] = {}
        self.step_writes = 0
        self._lock = threading.RLock()

    def load(self, run_id: str) -> LoadedRun | None:
        with self._lock:
            run = self.runs.get(run_id)
            if run is None:
                return None
            steps = self.steps.get(run_id, {})
            revisions = self.revisions.get(run_id, {})
            return LoadedRun(
                run=run,
                event=self.events[run_id],
                steps={record.key: record for record in steps.values()},
                subscriptions=list(self.subscriptions.get(run_id, [])),
                revisions={steps[text].key: revision for text, revision in revisions.items()},
                batch=[event for _, event in sorted(self.batch_events.get(run_id, {}).items())],
            )

    def get_run(self, run_id: str) -> RunRecord | None:
        return self.runs.get(run_id)

    def get_event(self, run_id: str) -> Event | None:
        return self.events.get(run_id)

    def create_run(
        self, run: RunRecord, event: Event, subscriptions: Sequence[CancelSubscription]
    ) -> RunRecord | None:
        with self._lock:
            if run.run_id in self.runs:
                return self.runs[run.run_id]
            self.runs[run.run_id] = run
            self.events[run.run_id] = event
            self.subscriptions[run.run_id] = list(subscriptions)
            return None

    def write_run(self, run: RunRecord, *, expected_version: int) -> None:
        with self._lock:
            current = self.runs.get(run.run_id)
            if current is None or current.version != expected_version:
                raise RunConflict(current)
            self.runs[run.run_id] = run

    def renew_lease(
        self, run_id: str, lease: Lease, *, current_step: CurrentStep | None = None
    ) -> RunRecord | None:
        with self._lock:
            current = self.runs.get(run_id)
            if current is None:
                raise RunConflict(None)
            held = current.lease
            if (
                current.status is not RunStatus.RUNNING
                or held is None
                or (held.message_id, held.receive_count, held.holder)
                != (lease.message_id, lease.receive_count, lease.holder)
            ):
                return current
            renewed = held.model_copy(
                update={"expires_at": lease.expires_at, "current_step": current_step}
            )
            self.runs[run_id] = current.model_copy(update={"lease": renewed})
            return None

    def poke(self, run_id: str) -> bool:
        from engine.model import EPOCH

        with self._lock:
            current = self.runs.get(run_id)
            if current is None or current.status.terminal:
                return False
            self.runs[run_id] = current.model_copy(
                update={"wake_at": EPOCH, "version": current.version + 1}
            )
            return True

    def put_step(self, run_id: str, record: StepRecord, *, expected: Revision | None) -> Revision:
        with self._lock:
            text = str(record.key)
            steps = self.steps.setdefault(run_id, {})
            revisions = self.revisions.setdefault(run_id, {})
            if revisions.get(text) != expected:
                raise StepConflict(self._stored(run_id, text))
            revision = Revision(str(next(self._revision)))
            steps[text] = record
            revisions[text] = revision
            self.step_writes += 1
            return revision

    def get_step(self, run_id: str, key: StepKey | str) -> Stored | None:
        with self._lock:
            return self._stored(run_id, str(key))

    def _stored(self, run_id: str, text: str) -> Stored | None:
        record = self.steps.get(run_id, {}).get(text)
        if record is None:
            return None
        return Stored(record, self.revisions[run_id][text])

    def delete_subscriptions(self, subscriptions: Sequence[CancelSubscription]) -> None:
        with self._lock:
            for subscription in subscriptions:
                kept = [
                    s
                    for s in self.subscriptions.get(subscription.run_id, [])
                    if s.index != subscription.index
                ]
                self.subscriptions[subscription.run_id] = kept

    def list_runs(
        self,
        *,
        workflow_id: str | None = None,
        status: RunStatus | None = None,
        limit: int = 50,
    ) -> list[RunRecord]:
        runs = [
            run
            for run in self.runs.values()
            if (workflow_id is None or run.workflow_id == workflow_id)
            and (status is None or run.status is status)
        ]
        return sorted(runs, key=lambda run: run.created_at, reverse=True)[:limit]

    def get_workflow_control(self, workflow_id: str) -> WorkflowControl | None:
        return self.controls.get(workflow_id)

    def put_workflow_control(self, control: WorkflowControl) -> None:
        self.controls[control.workflow_id] = control

    def find_waiters(self, index_key: str) -> list[tuple[str, Stored]]:
        with self._lock:
            return [
                (run_id, Stored(record, self.revisions[run_id][text]))
                for run_id, steps in self.steps.items()
                for text, record in steps.items()
                if record.index_key == index_key
            ]

    def find_subscriptions(self, index_key: str) -> list[CancelSubscription]:
        with self._lock:
            return [
                subscription
                for subscriptions in self.subscriptions.values()
                for subscription in subscriptions
                if subscription.index_key == index_key
            ]

    def add_wait_path(self, event_name: str, match_path: str | None, *, now: datetime) -> datetime:
        with self._lock:
            self.paths.setdefault(event_name, set()).add(match_path)
            return self.path_known_since.setdefault((event_name, match_path), now)

    def wait_paths(self, event_name: str) -> set[str | None]:
        return set(self.paths.get(event_name, set()))

    def record_event(self, event: Event, *, expires_at: datetime) -> None:
        with self._lock:
            if all(logged.id != event.id for logged in self.log):
                self.log.append(event)

    def events_since(self, event_name: str, since: datetime, *, now: datetime) -> list[Event]:
        with self._lock:
            return [
                event
                for event in self.log
                if event.name == event_name and event.ts is not None and event.ts >= since
            ]

    def record_keyed(
        self, event: Event, index_key: str, *, expires_at: datetime, spread: bool = False
    ) -> None:
        with self._lock:
            kept = self.keyed_log.setdefault(index_key, [])
            if all(logged.id != event.id for logged in kept):
                kept.append(event)

    def events_for_key(
        self, index_key: str, since: datetime, *, now: datetime, spread: bool = False
    ) -> list[Event]:
        with self._lock:
            return [
                event
                for event in self.keyed_log.get(index_key, [])
                if event.ts is not None and event.ts >= since
            ]

    def record_outcome(self, outcome: EventOutcome, *, expires_at: datetime) -> None:
        with self._lock:
            self.outcomes[outcome.event_id] = (outcome, expires_at)

    def get_outcome(self, event_id: str, *, now: datetime) -> EventOutcome | None:
        with self._lock:
            found = self.outcomes.get(event_id)
        if found is None or found[1] <= now:
            return None
        return found[0]

    def record_effect(self, effect: EventEffect, *, expires_at: datetime) -> None:
        with self._lock:
            self.effects[(effect.event_id, effect.kind)] = effect


@dataclass(order=True)
class _Queued:
    due: datetime
    sequence: int
    message: WorkMessage = field(compare=False)
    message_id: str = field(compare=False)
    receives: int = field(compare=False, default=0)


class InMemoryQueue:
    """WorkQueue and Timers: a priority queue of (due time, message)."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.items: list[_Queued] = []
        self._sequence = itertools.count()
        self._lock = threading.Lock()
        self.sent = 0

    def enqueue(self, message: WorkMessage, *, delay_seconds: int = 0) -> None:
        self._push(message, self.clock.now() + timedelta(seconds=delay_seconds))

    def arm(self, run_id: str, at: datetime) -> None:
        self._push(WorkMessage(run_id=run_id, reason="timer", at=at), at)

    def disarm(self, run_id: str, at: datetime) -> None:
        pass

    def _push(self, message: WorkMessage, due: datetime) -> None:
        with self._lock:
            number = next(self._sequence)
            heapq.heappush(self.items, _Queued(due, number, message, f"m{number}"))
            self.sent += 1

    def pop_due(self) -> _Queued | None:
        with self._lock:
            if self.items and self.items[0].due <= self.clock.now():
                return heapq.heappop(self.items)
            return None

    def requeue(self, item: _Queued) -> None:
        with self._lock:
            heapq.heappush(self.items, item)

    def next_due(self) -> datetime | None:
        with self._lock:
            return self.items[0].due if self.items else None


class InMemoryBus:
    def __init__(self) -> None:
        self.published: list[Event] = []
        #: The names waits asked to have routed (every name reaches the fakes anyway).
        self.routed: set[str] = set()

    def publish(self, events: Sequence[Event]) -> list[str]:
        self.published.extend(events)
        return [event.id for event in events]

    def route(self, event_name: str) -> None:
        self.routed.add(event_name)


class FakeCluster:
    """A Runner and EventRouter over the fakes, with a pump like LocalRuntime's."""

    def __init__(
        self,
        app: App,
        *,
        start: datetime,
        settings: EngineSettings | None = None,
        ports_hook: Callable[[Ports], Ports] | None = None,
        remaining_time: Callable[[], float] = lambda: float("inf"),
    ) -> None:
        self.clock = ManualClock(start)
        self.store = InMemoryStore()
        self.flow = InMemoryFlowStore(self.store)
        self.queue = InMemoryQueue(self.clock)
        self.bus = InMemoryBus()
        ports = Ports(
            store=self.store,
            index=self.store,
            events=self.store,
            queue=self.queue,
            timers=self.queue,
            bus=self.bus,
            clock=self.clock,
            flow=self.flow,
        )
        if ports_hook is not None:
            ports = ports_hook(ports)
        self.ports = ports
        self.settings = settings or EngineSettings()
        self.runner = Runner(app, ports, self.settings)
        self.router = EventRouter(app, ports, self.runner.lifecycle, self.settings)
        self.remaining_time = remaining_time
        self._event_ids = itertools.count(1)

    def send(self, event: Event) -> list[str]:
        if not event.id:
            event = event.model_copy(update={"id": f"evt-{next(self._event_ids)}"})
        if event.ts is None:
            event = event.model_copy(update={"ts": self.clock.now()})
        self._redelivered(lambda: self.router.cancel_matching(event))
        self._redelivered(lambda: self.router.resolve_waits(event))
        run_ids: list[str] = self._redelivered(lambda: self.router.trigger(event))
        self.drain()
        return run_ids

    @staticmethod
    def _redelivered(handle: Callable[[], Any], attempts: int = 10) -> Any:
        """Call an event handler as SQS would: again after a crash, up to `attempts`."""
        for attempt in range(attempts):
            try:
                return handle()
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException:
                if attempt == attempts - 1:
                    raise
        return None

    def drain(self, *, max_messages: int = 100_000) -> None:
        for _ in range(max_messages):
            item = self.queue.pop_due()
            if item is None:
                return
            item.receives += 1
            try:
                self.runner.handle(
                    item.message, Delivery(item.message_id, item.receives), self.remaining_time
                )
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException:
                # A crashed invocation: the message comes back (as SQS would).
                if item.receives < 10:
                    self.queue.requeue(item)
        raise RuntimeError("the fake queue never went idle")

    def advance(self, delta: timedelta) -> None:
        target = self.clock.now() + delta
        self.drain()
        while (due := self.queue.next_due()) is not None and due <= target:
            self.clock.set(max(due, self.clock.now()))
            self.drain()
        self.clock.set(target)
        self.drain()
