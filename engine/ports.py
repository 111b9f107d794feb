"""The engine's ports: what it needs from the outside world, as Protocols.

Real adapters live in `infra/` (DynamoDB, SQS, EventBridge Scheduler, EventBridge);
in-memory fakes for unit tests of the pure engine live in `engine/testing.py`.

Adapters raise only the adapter-contract errors of engine/errors.py (`TransientError`,
`PermanentError` and its kinds) and the conflicts (`RunConflict`, `StepConflict`, each
carrying what is stored now); that module says what each one makes the engine do.

Compare-and-set on step records: the store hands out a `Revision` with every step record
it returns (`load`, `get_step`, `find_waiters`, a `StepConflict`) and with every write it
makes (`put_step`); a write names the revision it expects to replace. What a revision
holds is the store's business: the engine keeps it beside the record and passes it back
unread (DynamoDB: the stored text; the in-memory fake: a counter). Records themselves
carry no storage details.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from engine.flow.ports import FlowStore
from engine.ids import StepKey
from engine.model import (
    CancelSubscription,
    CurrentStep,
    EventOutcome,
    Lease,
    RunRecord,
    RunStatus,
    StepRecord,
    WorkMessage,
)
from engine.operator_model import EventEffect, WorkflowControl
from sdk import Event


@dataclass(frozen=True, slots=True)
class Revision:
    """The store's opaque token for one stored version of a step record.

    Only the store that issued it reads `token`; two revisions are equal when they name
    the same stored version.
    """

    token: str | bytes


@dataclass(frozen=True, slots=True)
class Stored:
    """A step record as the store holds it, with the revision to compare-and-set it by."""

    record: StepRecord
    revision: Revision


@dataclass
class LoadedRun:
    """A run as one Query returns it: the run, its trigger event, steps and subscriptions.

    `revisions` holds the store's revision of each of `steps`, by the same keys. `batch`
    holds the events of a batched run in order (`ctx.events`; empty for other runs).
    """

    run: RunRecord
    event: Event
    steps: dict[StepKey, StepRecord] = field(default_factory=dict)
    subscriptions: list[CancelSubscription] = field(default_factory=list)
    revisions: dict[StepKey, Revision] = field(default_factory=dict)
    batch: list[Event] = field(default_factory=list)

    def stored(self, key: StepKey) -> Stored | None:
        """The step at `key` with its revision, or None if none is recorded there."""
        record = self.steps.get(key)
        return None if record is None else Stored(record, self.revisions[key])


class Clock(Protocol):
    """The only source of time and randomness for the engine and the SDK."""

    def now(self) -> datetime:
        """The current time, timezone-aware in UTC."""
        ...

    def random(self) -> float:
        """A random float in [0, 1) (retry jitter)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back, for how long something has taken.

        Never stored: it paces checks within one process (how often a running invocation
        looks at its run item). A virtual clock returns its virtual time here.
        """
        ...

    def token(self) -> str:
        """A fresh secret of at least 128 random bits, as text (a run's secret)."""
        ...


class RunStore(Protocol):
    def load(self, run_id: str) -> LoadedRun | None:
        """The run, its trigger event, steps and subscriptions (strongly consistent)."""
        ...

    def get_run(self, run_id: str) -> RunRecord | None: ...

    def get_event(self, run_id: str) -> Event | None:
        """The run's trigger event (strongly consistent), or None if the run is absent."""
        ...

    def create_run(
        self, run: RunRecord, event: Event, subscriptions: Sequence[CancelSubscription]
    ) -> RunRecord | None:
        """Create the run if absent. Returns None if created, else the existing run."""
        ...

    def write_run(self, run: RunRecord, *, expected_version: int) -> None:
        """Replace the run item if its version is `expected_version`, else RunConflict."""
        ...

    def renew_lease(
        self, run_id: str, lease: Lease, *, current_step: CurrentStep | None = None
    ) -> RunRecord | None:
        """Extend a RUNNING run's lease to `lease.expires_at` if this delivery still holds it.

        `current_step` notes the step the holder is executing (shown by `runs show`).
        Returns None when renewed; otherwise the current run (cancelled, taken over,
        finished), or raises RunConflict(None) if the run is gone. Does not change the
        run's version, so the holder's own final write is not disturbed.
        """
        ...

    def poke(self, run_id: str) -> bool:
        """Mark a non-terminal run due now (wake_at=EPOCH, version+1). False if terminal or absent."""
        ...

    def put_step(self, run_id: str, record: StepRecord, *, expected: Revision | None) -> Revision:
        """Write `record` at `record.key` if the stored version there is `expected` (None:
        there is none), else raise StepConflict carrying what is stored.

        Returns the revision of what it wrote, for the next compare-and-set.
        """
        ...

    def get_step(self, run_id: str, key: StepKey | str) -> Stored | None: ...

    def delete_subscriptions(self, subscriptions: Sequence[CancelSubscription]) -> None: ...

    def list_runs(
        self,
        *,
        workflow_id: str | None = None,
        status: RunStatus | None = None,
        limit: int = 50,
    ) -> list[RunRecord]:
        """Most recent runs first."""
        ...

    def get_workflow_control(self, workflow_id: str) -> WorkflowControl | None:
        """An operator's hold on a workflow (engine/control.py), if one was ever set."""
        ...

    def put_workflow_control(self, control: WorkflowControl) -> None: ...


class MatchIndex(Protocol):
    """Finds the waits and cancel rules an event may satisfy, by exact index key."""

    def find_waiters(self, index_key: str) -> list[tuple[str, Stored]]:
        """(run_id, stored step record) of the steps waiting on this key."""
        ...

    def find_subscriptions(self, index_key: str) -> list[CancelSubscription]: ...

    def add_wait_path(self, event_name: str, match_path: str | None, *, now: datetime) -> datetime:
        """Remember that some wait on `event_name` matches on `match_path`; returns since
        when every event of that name has seen the path (so has logged itself under its
        waits' keys: `EventLog.record_keyed`). `now` is when this call says it knew it."""
        ...

    def wait_paths(self, event_name: str) -> set[str | None]:
        """Every match path (None: no match path) some wait on `event_name` has used."""
        ...


class EventLog(Protocol):
    """Recently received events, kept for a lookback window so no wait misses one."""

    def record_event(self, event: Event, *, expires_at: datetime) -> None: ...

    def events_since(self, event_name: str, since: datetime, *, now: datetime) -> list[Event]:
        """Unexpired events of this name with `ts >= since`, oldest first."""
        ...

    def record_keyed(
        self, event: Event, index_key: str, *, expires_at: datetime, spread: bool = False
    ) -> None:
        """Keep `event` under a wait's index key too (the key its value for one of the
        name's match paths makes), so a wait on that key looks back at its key alone.
        `spread`: the key is the match-less one, which every event of the name and every
        new match-less wait on it use: spread it over several keys."""
        ...

    def events_for_key(
        self, index_key: str, since: datetime, *, now: datetime, spread: bool = False
    ) -> list[Event]:
        """Unexpired events kept under `index_key` with `ts >= since`, oldest first
        (`spread` as they were recorded)."""
        ...

    def record_outcome(self, outcome: EventOutcome, *, expires_at: datetime) -> None:
        """Keep what the trigger handler did with an event until `expires_at`: one write,
        keyed by the event's id (a later processing of the same id replaces it)."""
        ...

    def get_outcome(self, event_id: str, *, now: datetime) -> EventOutcome | None:
        """What the trigger handler last did with the event of this id, if not expired."""
        ...

    def record_effect(self, effect: EventEffect, *, expires_at: datetime) -> None:
        """Keep what the waits or cancel handler did with an event (one write, and only
        when it resolved or cancelled something) until `expires_at`."""
        ...


class WorkQueue(Protocol):
    def enqueue(self, message: WorkMessage, *, delay_seconds: int = 0) -> None: ...


class Timers(Protocol):
    """Durable wake-ups: at `at`, a WorkMessage(reason="timer", at=at) reaches the run."""

    def arm(self, run_id: str, at: datetime) -> None: ...

    def disarm(self, run_id: str, at: datetime) -> None:
        """Best effort: forget a wake-up that is no longer needed."""
        ...


class EventBus(Protocol):
    def publish(self, events: Sequence[Event]) -> list[str]:
        """Put events on the bus; returns their ids in order."""
        ...

    def route(self, event_name: str) -> None:
        """Make sure events of this name reach Stepline from now on (the bus's rules list
        the names an app uses, engine/event_names.py); called before a wait on a name
        registers. Cheap for a name already routed."""
        ...


@dataclass(frozen=True)
class Ports:
    """Everything the engine talks to. One DynamoDB adapter usually plays the store, the
    index, the event log and the flow store."""

    store: RunStore
    index: MatchIndex
    events: EventLog
    queue: WorkQueue
    timers: Timers
    bus: EventBus
    clock: Clock
    flow: FlowStore
