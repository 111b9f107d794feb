"""The durable records of a run, and the messages that move it.

A run is one `RunRecord` (status, version, wake time, lease, output) plus its trigger
`Event`, its cancel subscriptions and its `StepRecord`s, one per step position. The
store keeps each record as a single JSON blob so that loading a run reads few
attributes per item (moto's and DynamoDB's cost grows with them).

Step positions are keys like "00003" (the fourth step of the workflow body) or
"00003.00001.00000" (the first step of the second branch of a `parallel` at position
3). They depend only on the order in which the code calls steps, so they are the same on
every replay, whatever order parallel branches finish in.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sdk import Event

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class RunStatus(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SLEEPING = "SLEEPING"
    WAITING = "WAITING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)


class StepKind(StrEnum):
    RUN = "run"
    SLEEP = "sleep"
    WAIT = "wait_for_event"
    SEND = "send_event"
    INVOKE = "invoke"


class StepStatus(StrEnum):
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    RETRYING = "RETRYING"
    SLEEPING = "SLEEPING"
    WAITING = "WAITING"
    TIMED_OUT = "TIMED_OUT"
    CANCELLED = "CANCELLED"


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class ErrorInfo(_Record):
    """A failure as recorded: the exception's type name and message (and traceback)."""

    type: str
    message: str
    traceback: str | None = None

    @classmethod
    def from_exception(cls, error: BaseException, *, with_traceback: bool = True) -> ErrorInfo:
        trace = None
        if with_traceback and error.__traceback__ is not None:
            trace = "".join(traceback.format_exception(error)[-12:])[-4000:]
        return cls(type=type(error).__name__, message=str(error), traceback=trace)

    def __str__(self) -> str:
        return f"{self.type}: {self.message}"


class AttemptFailure(_Record):
    """One failed attempt of a step that was then retried (kept for the audit trail)."""

    attempt: int
    error: ErrorInfo
    started_at: datetime
    ended_at: datetime


class WaitSpec(_Record):
    """What a `wait_for_event` step waits for, and where it is indexed."""

    event: str
    index_key: str
    match: str | None = None
    if_: str | None = None
    # The run's trigger event, kept only when `if_` needs it to evaluate `event.*`.
    trigger: Event | None = None
    # Events published before this instant do not resolve the wait (lookback start).
    since: datetime
    # Events already consumed by earlier waits of this run on the same event name.
    exclude: tuple[str, ...] = ()
    # The waiting run's workflow, named when its `if_` cannot be evaluated on an event.
    workflow_id: str | None = None


class InvokeSpec(_Record):
    workflow: str
    child_run_id: str


class StepRecord(_Record):
    """The durable record of one step position."""

    key: str = Field(default="", exclude=True)
    # The stored JSON this record was read from, used for compare-and-set writes.
    raw: str | None = Field(default=None, exclude=True)
    id: str
    kind: StepKind
    status: StepStatus
    attempts: int = 0
    output: Any = None
    error: ErrorInfo | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    wake_at: datetime | None = None
    failures: tuple[AttemptFailure, ...] = ()
    wait: WaitSpec | None = None
    # Whether the record sits in the waiter index. A resolved wait stays indexed until
    # its run has seen the resolution, so a redelivered event can find it and wake the
    # run again if a crash cut off the first wake-up.
    indexed: bool = False
    invoke: InvokeSpec | None = None

    @property
    def index_key(self) -> str | None:
        """The waiter-index key while this record is indexed, else None."""
        if self.indexed and self.wait is not None:
            return self.wait.index_key
        return None

    @property
    def settled(self) -> bool:
        """True once the step's outcome is final (nothing left to wait for or retry)."""
        return self.status in _SETTLED

    def elapsed(self, now: datetime) -> bool:
        """A sleep whose wake time has come: it is over, though its record says SLEEPING.

        A sleep is written once, when it starts; its end is not written (it would cost a
        write per wake-up and say nothing the wake time does not). Views show it as
        COMPLETED at its wake time once the run has gone past it.
        """
        return (
            self.kind is StepKind.SLEEP
            and self.status is StepStatus.SLEEPING
            and self.wake_at is not None
            and self.wake_at <= now
        )


_SETTLED = frozenset(
    {StepStatus.COMPLETED, StepStatus.FAILED, StepStatus.TIMED_OUT, StepStatus.CANCELLED}
)


class Lease(_Record):
    """Which SQS delivery is advancing a RUNNING run, and until when."""

    message_id: str
    receive_count: int
    expires_at: datetime


class ParentRef(_Record):
    """The step of another run that waits for this run (`step.invoke`)."""

    run_id: str
    step_key: str
    step_id: str


class RunRecord(_Record):
    run_id: str
    workflow_id: str
    status: RunStatus
    version: int = 0
    # When the run next needs attention; EPOCH means "now" (set when an event resolves
    # one of its waits). None means nothing is scheduled (waiting without a timeout).
    wake_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None = None
    event_id: str
    event_name: str
    event_ts: datetime | None = None
    lease: Lease | None = None
    # The SQS message that made the latest transition; its redelivery re-does the
    # transition's side effects (arming a timer, notifying a parent), which a crash may
    # have cut off after the transition was written.
    last_message_id: str | None = None
    output: Any = None
    error: ErrorInfo | None = None
    parent: ParentRef | None = None
    # For a run started by `replay`: the run it re-runs, and the step it re-ran from.
    replay_of: str | None = None
    replay_from: str | None = None


class CancelSubscription(_Record):
    """A run's `cancel_on` rule, indexed by the value its cancelling event must carry."""

    run_id: str
    workflow_id: str
    index: int
    index_key: str
    expires_at: datetime | None = None
    trigger: Event | None = None


@dataclass
class LoadedRun:
    """A run as one Query returns it: the run, its trigger event, steps and subscriptions."""

    run: RunRecord
    event: Event
    steps: dict[str, StepRecord] = field(default_factory=dict)
    subscriptions: list[CancelSubscription] = field(default_factory=list)


WorkReason = Literal["start", "timer", "event", "continue", "child"]


class WorkMessage(_Record):
    """A work-queue message: "look at this run". Every message is an idempotent poke.

    It carries no outcome and no instruction: the engine decides what to do from the
    stored run alone, so a forged or replayed message can at most make it look again.
    Unknown fields are refused (the message goes to the dead-letter queue).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str = Field(min_length=1)
    reason: WorkReason
    # For timer messages: the wake time the timer was armed for.
    at: datetime | None = None


@dataclass(frozen=True)
class Delivery:
    """How a message reached us: SQS's message id and how many times it was received."""

    message_id: str
    receive_count: int = 1

    @property
    def is_redelivery(self) -> bool:
        return self.receive_count > 1
