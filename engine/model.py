"""The durable records of a run, and the messages that move it.

A run is one `RunRecord` (status, version, wake time, lease, output) plus its trigger
`Event`, its cancel subscriptions and its `StepRecord`s, one per step position (a
`StepKey`, engine/ids.py). These are domain values: how a store encodes them, and the
tokens it compares-and-sets them by, are the store's (engine/ports.py).
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from engine.flow.model import RunFlow
from engine.ids import StepKey
from sdk import Event

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# What a recorded failure keeps (README, Limits): the message of a step's or run's error,
# its traceback, and for each earlier failed attempt of a step, a shorter message and no
# traceback, for at most the last MAX_RECORDED_FAILURES attempts. A retried step then
# stays a few KB however large its exceptions are.
MAX_ERROR_MESSAGE_BYTES = 8_192
MAX_TRACEBACK_CHARS = 4_000
MAX_ATTEMPT_MESSAGE_BYTES = 512
MAX_RECORDED_FAILURES = 10


def truncate_utf8(text: str, max_bytes: int) -> str:
    """`text` cut to at most `max_bytes` of UTF-8, saying how much was cut."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= max_bytes:
        return text
    note = f" ... [{len(data) - max_bytes:,} more bytes not kept]"
    kept = data[: max(0, max_bytes - len(note))].decode("utf-8", "ignore")
    return kept + note


class RunStatus(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SLEEPING = "SLEEPING"
    WAITING = "WAITING"
    # Held by an operator (engine/control.py): starts no step until resumed.
    PAUSED = "PAUSED"
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
    PATCH = "patched"  # a ctx.patched marker: this run took the new code at this point
    # A scope of steps whose result is recorded once (engine/operations/child.py).
    CHILD = "child"
    # A batch (engine/operations/batch.py): the map or parallel group, and each item or
    # branch of it, recorded once it settles.
    MAP = "map"
    MAP_ITEM = "map_item"
    PARALLEL = "parallel"
    BRANCH = "branch"
    CALLBACK = "callback"
    WAIT_FOR_CALLBACK = "wait_for_callback"
    CONDITION = "wait_for_condition"


class StepStatus(StrEnum):
    # An at-most-once attempt that began (its outcome not yet recorded), or a scope (a
    # child, a map, a parallel group with completion options) whose steps are under way.
    STARTED = "STARTED"
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
    """A failure as recorded: the exception's type name and message (and traceback).

    The message is kept to MAX_ERROR_MESSAGE_BYTES and the traceback to its last
    MAX_TRACEBACK_CHARS characters, whoever builds the record.
    """

    type: str
    message: str
    traceback: str | None = None

    @field_validator("type")
    @classmethod
    def _short_type(cls, value: str) -> str:
        return truncate_utf8(value, 256)

    @field_validator("message")
    @classmethod
    def _capped_message(cls, value: str) -> str:
        return truncate_utf8(value, MAX_ERROR_MESSAGE_BYTES)

    @field_validator("traceback")
    @classmethod
    def _capped_traceback(cls, value: str | None) -> str | None:
        return value[-MAX_TRACEBACK_CHARS:] if value is not None else None

    @classmethod
    def from_exception(cls, error: BaseException, *, with_traceback: bool = True) -> ErrorInfo:
        trace = None
        if with_traceback and error.__traceback__ is not None:
            trace = "".join(traceback.format_exception(error)[-12:])
        return cls(type=type(error).__name__, message=str(error), traceback=trace)

    def brief(self) -> ErrorInfo:
        """What an earlier attempt keeps: a shorter message and no traceback."""
        return ErrorInfo(
            type=self.type, message=truncate_utf8(self.message, MAX_ATTEMPT_MESSAGE_BYTES)
        )

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
    # Written by earlier versions only: the trigger is stored once, as the run's EVENT
    # item, and loaded when `if_` needs it.
    trigger: Event | None = None
    # Events received before this instant do not resolve the wait (lookback start).
    since: datetime
    # Events received at or after `since` that earlier waits of this run on the same
    # event name (or the trigger) already used.
    exclude: tuple[str, ...] = ()
    # The waiting run's workflow, named when its `if_` cannot be evaluated on an event.
    workflow_id: str | None = None


class InvokeSpec(_Record):
    workflow: str
    child_run_id: str
    tenant_id: str | None = None


class CallbackSpec(_Record):
    """What a callback step waits for: a completion carrying its id (engine/callbacks.py).

    `secret` is the random part of the callback id (Clock.token); the id itself is derived
    from it with the run id and the step's key (engine.ids.callback_id). The step's
    `wake_at` is the earlier of `timeout_at` and the heartbeat deadline.
    """

    secret: str = Field(repr=False)
    timeout_at: datetime | None = None
    heartbeat_timeout: float | None = None
    heartbeat_at: datetime | None = None
    # Who settled it: the id of the event that did, or "api" for a direct call.
    settled_by: str | None = None


class StepRecord(_Record):
    """The durable record of one step position."""

    # Where the step sits (not part of the stored record: the store keys it by this).
    key: StepKey = Field(default=StepKey(), exclude=True)
    id: str
    kind: StepKind
    status: StepStatus
    attempts: int = 0
    output: Any = None
    error: ErrorInfo | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    wake_at: datetime | None = None
    # The last MAX_RECORDED_FAILURES failed attempts (ErrorInfo.brief), and how many
    # earlier ones were not kept.
    failures: tuple[AttemptFailure, ...] = ()
    failures_dropped: int = 0
    wait: WaitSpec | None = None
    # Whether the record sits in the waiter index. A resolved wait stays indexed until
    # its run has seen the resolution, so a redelivered event can find it and wake the
    # run again if a crash cut off the first wake-up.
    indexed: bool = False
    invoke: InvokeSpec | None = None
    callback: CallbackSpec | None = None
    # When the attempt in progress began (an at-most-once step's STARTED record).
    attempt_started_at: datetime | None = None

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
    """Which SQS delivery is advancing a RUNNING run, and until when.

    The invocation holding it renews `expires_at` while it works (see `engine/lease.py`),
    so a lease outlives a long step but not its holder. `holder` names the process (a
    random token per engine instance): a redelivery handled in the holder's own process
    can tell at once whether the holder is still running; elsewhere it waits for expiry.
    """

    message_id: str
    receive_count: int
    expires_at: datetime
    holder: str = ""
    # Noted when the lease is renewed during a long step (nothing is written per step).
    current_step: CurrentStep | None = None


class CurrentStep(_Record):
    """The step a RUNNING run's invocation is executing now (noted by its lease renewals)."""

    id: str
    started_at: datetime


class PauseInfo(_Record):
    """Why and since when a PAUSED run is held, and what resuming it restores."""

    at: datetime
    reason: str
    # The status it was paused in (QUEUED for a run held at its start).
    was: RunStatus
    # Held because its workflow was paused: resuming the workflow resumes it.
    by_workflow: bool = False
    # The claim of an invocation that was executing a step when the run was paused.
    lease: Lease | None = None


class ParentRef(_Record):
    """The step of another run that waits for this run (`step.invoke`)."""

    run_id: str
    step_key: StepKey
    step_id: str


class RunRecord(_Record):
    run_id: str
    workflow_id: str
    status: RunStatus
    version: int = 0
    # Random, drawn when the run is created (Clock.token), never shown: keys the ids of
    # the events the run sends (engine.ids.sent_event_id). None for runs created before
    # runs had one.
    secret: str | None = Field(default=None, repr=False)
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
    # Given by the parent's `step.invoke(..., tenant_id=...)`; shown by `runs show`.
    tenant_id: str | None = None
    # For a run started by `replay`: the run it re-runs, and the step it re-ran from.
    replay_of: str | None = None
    replay_from: str | None = None
    # `ctx.continue_as_new`: the run this one continues, and the run that continues it.
    continued_from: str | None = None
    continued_as: str | None = None
    # The wake-up the latest suspension armed. An event or a child's result can end the
    # suspension first (and a poke overwrites `wake_at`); the next transition disarms it.
    armed_at: datetime | None = None
    # The step positions the latest invocation suspended at (empty unless suspended).
    suspended_at: tuple[StepKey, ...] = ()
    # When the latest invocation claimed the run. A sleep whose wake time is later was
    # never passed: a run cancelled before its timer was handled did not sleep through it.
    invoked_at: datetime | None = None
    # Its flow controls' keys and state (engine/flow/); None for a run without any.
    flow: RunFlow | None = None
    # While PAUSED: when, why and from what (engine/control.py).
    pause: PauseInfo | None = None

    @property
    def lookback_start(self) -> datetime:
        """The earliest event time a new wait (or cancel rule) of this run may see.

        A replay starts with its original's (old) event: it must not see what arrived
        before the replay itself was created.
        """
        if self.replay_of is not None:
            return self.created_at
        return self.event_ts or self.created_at

    def passed(self, sleep: StepRecord) -> bool:
        """Whether the run went past a sleep (whose end is not written; see `elapsed`)."""
        if self.status is RunStatus.CANCELLED:
            return self.invoked_at is not None and sleep.elapsed(self.invoked_at)
        # An invocation at or after the wake time wrote the run (so it replayed the sleep
        # as over), and the run is not still sleeping until that very time.
        return sleep.elapsed(self.updated_at) and (
            self.status.terminal or self.wake_at != sleep.wake_at
        )


class CancelSubscription(_Record):
    """A run's `cancel_on` rule, indexed by the value its cancelling event must carry."""

    run_id: str
    workflow_id: str
    index: int
    index_key: str
    expires_at: datetime | None = None
    # Written by earlier versions only (see WaitSpec.trigger).
    trigger: Event | None = None


# "lease": look again at a run whose lease a live invocation held (see engine/runner.py).
# "flow": a concurrency slot was handed to the run, or its queue's safety timer fired.
WorkReason = Literal["start", "timer", "event", "continue", "child", "lease", "flow"]


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


class SkippedWorkflow(_Record):
    """A workflow an event is named for but did not start, and why.

    `control` names the flow control that decided (rate_limit, idempotency, debounce,
    batch_events, singleton, or "key" when a key expression failed), and `run_id` the
    run concerned: the one the event was debounced or batched into, or duplicated.
    """

    workflow_id: str
    reason: str
    control: str | None = None
    run_id: str | None = None


class EventOutcome(_Record):
    """What the trigger handler did with one event: the runs it started, or why none.

    Written once per processed event (one write, whatever the number of runs) and kept
    for the lookback window, so that `stepline send` (and later a dashboard) can say
    "started runs X, Y" or "started nothing: <reason>". `existing` lists runs this
    event's id had already started: a duplicate id, or a redelivery of the same event
    after an earlier delivery started them (the latest processing is what is kept).
    """

    event_id: str
    event_name: str
    # When the trigger handler processed it (each processing rewrites the record).
    at: datetime
    started: tuple[str, ...] = ()
    existing: tuple[str, ...] = ()
    skipped: tuple[SkippedWorkflow, ...] = ()
    # Why it started no run, when it started none and found none.
    reason: str | None = None

    @property
    def run_ids(self) -> tuple[str, ...]:
        return self.started + self.existing

    def summary(self, previous: EventOutcome | None = None) -> str:
        """One line for people: what this event did. With `previous` (the record of an
        earlier event with the same id), runs that one already had count as existing."""
        prior = set(previous.run_ids) if previous is not None else set()
        started = tuple(run_id for run_id in self.started if run_id not in prior)
        existing = tuple(run_id for run_id in self.run_ids if run_id not in started)
        text = ""
        if started:
            text = f"started {_runs(started)}"
            if existing:
                text += f"; {_runs(existing)} already existed for this event id"
        controlled = "; ".join(
            f"{entry.workflow_id}: {entry.reason}" for entry in self.skipped if entry.control
        )
        if started:
            return text + (f"; {controlled}" if controlled else "")
        if existing:
            return (
                f"started nothing new: event id {self.event_id!r} is a duplicate; it had "
                f"already started {_runs(existing)}"
            ) + (f"; {controlled}" if controlled else "")
        return f"started nothing: {self.reason or controlled or 'no workflow matched'}"


def _runs(run_ids: tuple[str, ...]) -> str:
    return ("run " if len(run_ids) == 1 else "runs ") + ", ".join(run_ids)
