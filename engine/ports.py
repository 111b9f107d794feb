"""The engine's ports: what it needs from the outside world, as Protocols.

Real adapters live in `infra/` (DynamoDB, SQS, EventBridge Scheduler, EventBridge);
in-memory fakes for unit tests of the pure engine live in `engine/testing.py`.

Error contract: adapters raise only the exceptions defined here, chosen by the type of
the failure (the AWS error code), never by its text:

    RunConflict, StepConflict   a lost compare-and-set, carrying what is stored now
    TransientError              retrying may fix it (throttling, a 5xx, a timeout): the
    │                           engine gives the message back to the queue for later
    └── UnreachableError        the endpoint could not be connected to at all
    PermanentError              retrying will not fix it: its message (and `remedy`) says
    │                           what to fix, after which the dead-letter queue is redriven
    ├── ItemTooLargeError       a record is over the item size limit
    ├── ResourceMissingError    a table, queue, bus or schedule group does not exist
    ├── AccessDeniedError       the credentials lack a permission
    └── InvalidRequestError     the service refused the request as invalid

Inside a run, a permanent error fails the message, not the run: an operator's fix and a
redrive let it carry on. Two exceptions: an item too large fails the step or run it is
about (Interpreter.record, Runner._apply), and the bus failing a `send_event` step is that
step's failure, retried with its policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from engine.model import (
    CancelSubscription,
    CurrentStep,
    EventOutcome,
    Lease,
    LoadedRun,
    RunRecord,
    RunStatus,
    StepRecord,
    WorkMessage,
)
from sdk import Event


class TransientError(Exception):
    """An infrastructure call failed after retries; the message should be retried later."""


class UnreachableError(TransientError):
    """The service's endpoint could not be connected to (refused, connect timeout, DNS)."""


class PermanentError(Exception):
    """An infrastructure call failed in a way retrying will not fix.

    `remedy` says what to do about it; once that is done, the messages that failed
    meanwhile are sent back from their dead-letter queue (redriven).
    """

    remedy = "fix the cause named in the error"


class ItemTooLargeError(PermanentError):
    """A record is over the store's item size limit (DynamoDB: 400 KB)."""

    remedy = "keep what steps return and events carry under the documented limits"


class ResourceMissingError(PermanentError):
    """A table, queue, event bus or schedule group the adapter uses does not exist."""

    remedy = (
        "deploy the stack, or point the STEPLINE_* settings (and the region) at the "
        "resources it created"
    )


class AccessDeniedError(PermanentError):
    """The credentials lack a permission the call needs (or are invalid)."""

    remedy = "grant the function's role the permission named in the error"


class InvalidRequestError(PermanentError):
    """The service refused the request as invalid (a validation error)."""

    remedy = "fix what the error names; if it is Stepline's own request, report it as a bug"


# Earlier names of the permanent branch, kept for callers written against them.
AdapterError = PermanentError
PayloadTooLarge = ItemTooLargeError


class RunConflict(Exception):
    """The run item changed since it was read (its version differs), or does not exist."""

    def __init__(self, current: RunRecord | None) -> None:
        super().__init__("run changed concurrently")
        self.current = current


class StepConflict(Exception):
    """A step record changed since it was read, or already exists."""

    def __init__(self, current: StepRecord | None) -> None:
        super().__init__("step record changed concurrently")
        self.current = current


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

    def put_step(
        self, run_id: str, record: StepRecord, *, expected: StepRecord | None
    ) -> StepRecord:
        """Write a step record if the stored one is `expected` (None: absent), else StepConflict.

        Returns the record as stored (with `raw` set for the next compare-and-set).
        """
        ...

    def get_step(self, run_id: str, key: str) -> StepRecord | None: ...

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


class MatchIndex(Protocol):
    """Finds the waits and cancel rules an event may satisfy, by exact index key."""

    def find_waiters(self, index_key: str) -> list[tuple[str, StepRecord]]:
        """(run_id, step record) of the steps waiting on this key."""
        ...

    def find_subscriptions(self, index_key: str) -> list[CancelSubscription]: ...

    def add_wait_path(self, event_name: str, match_path: str | None) -> None:
        """Remember that some wait on `event_name` matches on `match_path`."""
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

    def record_outcome(self, outcome: EventOutcome, *, expires_at: datetime) -> None:
        """Keep what the trigger handler did with an event until `expires_at`: one write,
        keyed by the event's id (a later processing of the same id replaces it)."""
        ...

    def get_outcome(self, event_id: str, *, now: datetime) -> EventOutcome | None:
        """What the trigger handler last did with the event of this id, if not expired."""
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


@dataclass(frozen=True)
class Ports:
    """Everything the engine talks to. One DynamoDB adapter usually plays the first three."""

    store: RunStore
    index: MatchIndex
    events: EventLog
    queue: WorkQueue
    timers: Timers
    bus: EventBus
    clock: Clock
