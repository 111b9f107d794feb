"""One invocation of a workflow: positions, determinism, records, suspension, budget, gate.

A `Session` is what every operation (engine/operations/) is written against. It holds the
run's history as loaded and what this invocation adds to it, and offers:

- `open(kind, id)`: the next position in the current scope (the workflow body, one
  branch of a parallel, a child, a map item) and its `Slot`: the record there, if any,
  and the store's revision of it. `slot_at(key, ...)` is the same for a position a batch
  chooses (its items), which takes no position in a scope. On replay the call at a position must ask for the step id and kind
  recorded there; anything else raises `sdk.NonDeterminismError` and sets the fatal
  flag, so the run fails even if the code catches the error (and every later step call
  raises it again). Before new work starts (a step, an attempt, a wait, a sleep, a
  child) it passes the step gate: the lease keeper stops the invocation once the run
  was cancelled or claimed elsewhere (engine/lease.py).
- `record(slot, record)`: the only write of a step's outcome, a compare-and-set against
  the slot's revision, so a concurrent invocation can never make a step's outcome be
  recorded twice. A lost race means another invocation owns the run (`Superseded`), or,
  for steps settled from outside (waits, invokes), that the stored record is the answer.
- `suspend(slot, kind, wake_at)`: note what the run waits for and unwind (`SuspendRun`).
  A scope that suspended stays suspended: code that swallows the exception and calls
  another step is stopped again. A batch whose outcome is decided withdraws what its
  items wait for (`discard_pending`) and stops them at their next step call (a scope's
  `stops`, raising `BatchHalted`).
- `ensure_budget(slot)`: suspend, to continue in a fresh invocation, when the Lambda's
  time is nearly spent; every invocation runs at least one new step first.
- `executing(slot)`: marks the step whose code runs now (`ctx.attempt`; steps cannot
  nest), for the log keys and the lease renewals.
- `call_port(call)`: a port call, performed by the driver (engine/driver.py); a port's
  failure becomes `InfrastructureFailure`, which gives the message back to the queue.

While the code re-runs what earlier invocations already ran, `replaying` is true (the
workflow logger is silent): from the start, if anything was recorded, until a step that
is not simply replayed, or the position where the previous invocation suspended.
`resumed_at(key)` tells an operation that the run suspended at its position, so what it
observes there now (a settled wait, an elapsed sleep) is new to the run: plugins
(`plugins`, engine/plugins.py) hear of it once.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, NamedTuple, NoReturn, TypeVar

from engine.codec import to_stored_json
from engine.driver import Io
from engine.errors import (
    BatchHalted,
    ContinueAsNew,
    ErrorType,
    FailRun,
    InfrastructureFailure,
    ItemTooLargeError,
    PermanentError,
    StepConflict,
    StepOutputError,
    Superseded,
    SuspendRun,
    TransientError,
)
from engine.ids import MAX_POSITION, StepKey, display_step_id
from engine.lease import LeaseKeeper
from engine.lifecycle import Lifecycle
from engine.logcontext import bind
from engine.model import ErrorInfo, StepKind, StepRecord, StepStatus
from engine.outcomes import Pending, PendingKind
from engine.plugins import Plugins
from engine.ports import Clock, LoadedRun, Ports, Revision
from engine.settings import EngineSettings
from engine.workflow_log import ReplayAwareLogger
from sdk import App, NonDeterminismError, StepError, Workflow, WorkflowDefinitionError

T = TypeVar("T")


@dataclass
class Scope:
    """The workflow body, a branch of a parallel, a child or a map item: positions count
    within it. `stops` are the decided-flags of the batches it runs in (see BatchHalted)."""

    prefix: StepKey
    next_position: int = 0
    occurrences: dict[str, int] = field(default_factory=dict)
    suspended: bool = False
    stops: tuple[threading.Event, ...] = ()


@dataclass
class Slot:
    """One step position as this invocation sees it: the record there and its revision."""

    key: StepKey
    step_id: str
    kind: StepKind
    record: StepRecord | None
    revision: Revision | None

    @property
    def attempt(self) -> int:
        """The attempt about to run (from 1): one more than the record counts."""
        return (self.record.attempts if self.record else 0) + 1


class Peeked(NamedTuple):
    key: StepKey
    record: StepRecord | None
    group: bool


_scope: contextvars.ContextVar[Scope] = contextvars.ContextVar("stepline_scope")
_running_step: contextvars.ContextVar[tuple[str, int] | None] = contextvars.ContextVar(
    "stepline_running_step", default=None
)


def current_attempt() -> int:
    """`ctx.attempt`: the zero-based attempt of the step executing now (0 outside one)."""
    running = _running_step.get()
    return running[1] if running else 0


def step_error(record: StepRecord) -> StepError:
    """The StepError a settled, failed record raises in the workflow (now and on replay)."""
    error = record.error or ErrorInfo(type=ErrorType.UNKNOWN, message="step failed")
    return StepError(record.id, error.type, error.message)


class Session:
    def __init__(
        self,
        *,
        app: App,
        workflow: Workflow,
        loaded: LoadedRun,
        ports: Ports,
        lifecycle: Lifecycle,
        settings: EngineSettings,
        remaining_time: Callable[[], float],
        keeper: LeaseKeeper | None = None,
        plugins: Plugins | None = None,
    ) -> None:
        self.app = app
        self.workflow = workflow
        self.loaded = loaded
        self.run_id = loaded.run.run_id
        self.ports = ports
        self.clock = ports.clock
        self.lifecycle = lifecycle
        self.settings = settings
        self.remaining_time = remaining_time
        self.keeper = keeper
        self.history: dict[StepKey, StepRecord] = dict(loaded.steps)
        self._revisions: dict[StepKey, Revision] = dict(loaded.revisions)
        # Positions that hold steps of their own (a parallel group, a child, a map or one
        # of its items): every proper prefix of a recorded key. A step asked for at one
        # of them, where nothing is recorded, is not what the history holds.
        self._scopes: set[StepKey] = set()
        for key in self.history:
            for depth in range(1, len(key)):
                self._scopes.add(StepKey(key[:depth]))
        #: Hooks of the app's plugins (None without plugins: nothing to call).
        self.plugins = plugins
        self.pending: list[Pending] = []
        # New steps this invocation has started running (replayed ones do not count).
        self.steps_started = 0
        # Why the run must fail whatever the code does next (see the module docstring).
        self.fatal: ErrorInfo | None = None
        self.replaying = bool(self.history)
        self._resume_points = frozenset(loaded.run.suspended_at)
        self._lock = threading.RLock()
        self.logger = ReplayAwareLogger(logging.getLogger("stepline.workflow"), self)

    def recorded(self) -> list[StepRecord]:
        """The run's step records as this invocation knows them now (a snapshot)."""
        with self._lock:
            return list(self.history.values())

    # -- positions and determinism -------------------------------------------------------

    def enter_scope(self, prefix: StepKey, *, stop: threading.Event | None = None) -> None:
        """Start counting positions under `prefix` in the current context; `stop` is the
        decided-flag of a batch this scope is an item of (inner scopes inherit them)."""
        outer = _scope.get(None)
        stops = outer.stops if outer is not None else ()
        _scope.set(Scope(prefix=prefix, stops=(*stops, stop) if stop is not None else stops))

    async def open(self, kind: StepKind, user_id: str, *, holds_steps: bool = False) -> Slot:
        """Take the next position for a step of `kind` called `user_id` (module docstring)."""
        if not isinstance(user_id, str) or not user_id.strip() or len(user_id) > 200:
            raise WorkflowDefinitionError(
                f"step id {user_id!r}: use a non-empty string of at most 200 characters"
            )
        running = _running_step.get()
        if running is not None:
            raise WorkflowDefinitionError(
                f"step {user_id!r} was called inside step {running[0]!r}; steps cannot be "
                "nested. Call it from the workflow function instead."
            )
        scope = self._take_position()
        position = scope.next_position
        scope.next_position += 1
        occurrence = scope.occurrences.get(user_id, 0) + 1
        scope.occurrences[user_id] = occurrence
        step_id = display_step_id(user_id, occurrence)
        key = scope.prefix.child(position)
        with self._lock:
            record = self.history.get(key)
            revision = self._revisions.get(key)
            is_group = key in self._scopes
        if record is not None and (record.id != step_id or record.kind != kind):
            self._non_deterministic(key, f"step {record.id!r} ({record.kind})", step_id, kind)
        if record is None and is_group:
            self._non_deterministic(key, "a parallel group", step_id, kind)
        if key in self._resume_points:
            # The previous invocation stopped here: whatever the code does next, it does
            # for the first time (after an elapsed sleep, a resolved wait, a child's end).
            self.replaying = False
        if record is None or not (
            record.settled
            or record.elapsed(self.clock.now())
            # A scope under way starts nothing here: its steps pass the gate themselves.
            or (holds_steps and record.status is StepStatus.STARTED)
        ):
            self.replaying = False
            keeper = self.keeper
            if keeper is not None:
                # The step gate: new work starts here, not once the run was cancelled or
                # claimed elsewhere. It reads the run item only now and then (then I/O).
                if keeper.look_due():
                    await Io(keeper.check)
                else:
                    keeper.check()
        return Slot(key=key, step_id=step_id, kind=kind, record=record, revision=revision)

    def peek(self) -> Peeked:
        """The next position of the current scope and what the history holds there,
        without taking it (`ctx.patched` decides from it; `stepline check` reports it)."""
        scope = self._take_position()
        key = scope.prefix.child(scope.next_position)
        with self._lock:
            return Peeked(key, self.history.get(key), key in self._scopes)

    def open_group(self) -> StepKey:
        """Take a position for a parallel group; returns the key its branches extend."""
        scope = self._take_position()
        key = scope.prefix.child(scope.next_position)
        scope.next_position += 1
        with self._lock:
            record = self.history.get(key)
        if record is not None:
            self._non_deterministic(key, f"step {record.id!r} ({record.kind})", "a parallel group")
        return key

    def slot_at(self, key: StepKey, kind: StepKind, step_id: str) -> Slot:
        """The slot of a batch's item at `key` (no position taken), checked against the
        history like `open`."""
        if self.fatal is not None:
            self._raise_fatal()
        with self._lock:
            record = self.history.get(key)
            revision = self._revisions.get(key)
        if record is not None and (record.id != step_id or record.kind != kind):
            self._non_deterministic(key, f"step {record.id!r} ({record.kind})", step_id, kind)
        return Slot(key=key, step_id=step_id, kind=kind, record=record, revision=revision)

    def slot_of(self, key: StepKey) -> Slot:
        """The slot of a position opened earlier, as this invocation knows it now."""
        with self._lock:
            record = self.history[key]
            revision = self._revisions.get(key)
        return Slot(key=key, step_id=record.id, kind=record.kind, record=record, revision=revision)

    async def gate(self) -> None:
        """The step gate, before new work that opens no position (a batch's item)."""
        self.replaying = False
        keeper = self.keeper
        if keeper is not None:
            if keeper.look_due():
                await Io(keeper.check)
            else:
                keeper.check()

    def record_at(self, key: StepKey) -> StepRecord | None:
        """The record at `key` as this invocation knows it now (None: nothing there)."""
        with self._lock:
            return self.history.get(key)

    def has_steps_under(self, key: StepKey) -> bool:
        """Whether the loaded history holds steps inside the scope at `key` (it began)."""
        return key in self._scopes

    def resumed_at(self, key: StepKey) -> bool:
        """Whether the run's latest suspension was at `key` (what is there now is new)."""
        return key in self._resume_points

    def _take_position(self) -> Scope:
        if self.fatal is not None:
            # The code caught the fatal error and carried on: stop it again.
            self._raise_fatal()
        scope = _scope.get()
        if scope.stops and any(stop.is_set() for stop in scope.stops):
            # The batch this scope is an item of has its outcome: start nothing more.
            raise BatchHalted()
        if scope.suspended:
            # The code swallowed a SuspendRun and carried on: stop it again.
            raise SuspendRun()
        if scope.next_position > MAX_POSITION:
            self.fail(
                ErrorInfo(
                    type=ErrorType.HISTORY_LIMIT,
                    message=f"run {self.run_id} called more than {MAX_POSITION} steps in one "
                    "scope; split the work into child workflows with step.invoke",
                )
            )
        return scope

    def non_deterministic(
        self, key: StepKey, recorded: str, asked: str, kind: StepKind | None = None
    ) -> NoReturn:
        """Fail the run: the code asked for `asked` where the history holds `recorded`."""
        self._non_deterministic(key, recorded, asked, kind)

    def _non_deterministic(
        self, key: StepKey, recorded: str, asked: str, kind: StepKind | None = None
    ) -> NoReturn:
        asked_text = f"step {asked!r} ({kind})" if kind else asked
        message = (
            f"run {self.run_id} is not deterministic at position {key}: the history "
            f"recorded {recorded} there, but the code now asks for {asked_text}. "
            "A workflow must call the same steps in the same order on every replay. "
            "If you changed the workflow while runs were in flight, keep the old "
            "order for those runs (branch with ctx.patched('change-id'); "
            "`stepline check` finds such runs before a deploy), or cancel them and "
            "start new ones; ids and kinds must not depend on time, randomness or "
            "I/O outside steps."
        )
        self.fatal = ErrorInfo(type=ErrorType.NON_DETERMINISM, message=message)
        raise NonDeterminismError(message)

    def fail(self, error: ErrorInfo) -> NoReturn:
        """Fail the run, whatever the code does (it cannot catch FailRun by accident)."""
        self.fatal = error
        raise FailRun(error)

    def continue_as_new(self, data: dict[str, Any]) -> NoReturn:
        """`ctx.continue_as_new(data)`: end the invocation with a fresh run to start."""
        try:
            encoded = self.encode("continue_as_new data", data)
        except StepOutputError as error:
            raise WorkflowDefinitionError(str(error)) from None
        if not isinstance(encoded, dict):
            raise WorkflowDefinitionError("continue_as_new takes a JSON object (a dict)")
        raise ContinueAsNew(encoded)

    def _raise_fatal(self) -> NoReturn:
        assert self.fatal is not None
        if self.fatal.type == ErrorType.NON_DETERMINISM:
            raise NonDeterminismError(self.fatal.message)
        raise FailRun(self.fatal)

    # -- writing records -----------------------------------------------------------------

    async def record(
        self,
        slot: Slot,
        record: StepRecord,
        *,
        on_conflict: Literal["supersede", "return"] = "supersede",
    ) -> StepRecord:
        """Write `record` at the slot over what the slot holds (compare-and-set).

        On a conflict another invocation or a resolver wrote first. For steps whose code
        ran here that means another invocation owns the run ("supersede"); for waits,
        invokes and sleeps the other writer settled it, and the current record is the
        answer ("return").
        """
        # Records built for this slot carry its key already (a copy per step is not free).
        placed = record if record.key == slot.key else record.model_copy(update={"key": slot.key})
        store, expected = self.ports.store, slot.revision
        try:
            revision = await Io(lambda: store.put_step(self.run_id, placed, expected=expected))
        except StepConflict as conflict:
            if on_conflict == "supersede" or conflict.current is None:
                raise Superseded() from None
            placed, revision = conflict.current.record, conflict.current.revision
        except ItemTooLargeError as error:
            if _is_too_large_failure(record):
                raise InfrastructureFailure(error) from None
            await self._fail_too_large(slot, record, error)
        except (TransientError, PermanentError) as error:
            raise InfrastructureFailure(error) from None
        with self._lock:
            self.history[slot.key] = placed
            self._revisions[slot.key] = revision
        slot.record, slot.revision = placed, revision
        return placed

    async def _fail_too_large(
        self, slot: Slot, refused: StepRecord, error: ItemTooLargeError
    ) -> NoReturn:
        """The store refused a step's record as too large: the step fails, not the message.

        Outputs, errors and waits are kept under the item limit by construction, so this
        is a last resort; it records a small FAILED record and raises StepError, which the
        workflow may catch like any step failure.
        """
        info = ErrorInfo(
            type=ErrorType.ITEM_TOO_LARGE,
            message=(
                f"step {slot.step_id!r} could not be recorded: its record is over DynamoDB's "
                f"400 KB item size limit ({error}). Keep a step's output under "
                f"{self.settings.max_output_bytes:,} bytes of JSON; store large data "
                "elsewhere (S3, your database) and return a reference."
            ),
        )
        await self.record(
            slot,
            StepRecord(
                id=slot.step_id,
                kind=slot.kind,
                status=StepStatus.FAILED,
                attempts=refused.attempts,
                error=info,
                started_at=refused.started_at,
                ended_at=self.clock.now(),
            ),
        )
        raise StepError(slot.step_id, info.type, info.message)

    async def call_port(self, call: Callable[[], T]) -> T:
        """A port call inside a run: its failure gives the message back to the queue."""
        try:
            return await Io(call)
        except (TransientError, PermanentError) as error:
            raise InfrastructureFailure(error) from None

    def encode(self, what: str, value: Any) -> Any:
        """The JSON form of a value as it will be stored (StepOutputError if it cannot be)."""
        return to_stored_json(what, value, max_bytes=self.settings.max_output_bytes)

    # -- suspending ----------------------------------------------------------------------

    def suspend(self, slot: Slot, kind: PendingKind, wake_at: datetime | None) -> NoReturn:
        with self._lock:
            self.pending.append(Pending(slot.key, slot.step_id, kind, wake_at))
        self.mark_suspended()
        raise SuspendRun()

    def mark_suspended(self) -> None:
        """The current scope stops here: any later step call in it suspends again."""
        _scope.get().suspended = True

    def discard_pending(self, prefix: StepKey) -> None:
        """Forget what the steps under `prefix` wait for (a batch decided without them)."""
        size = len(prefix)
        with self._lock:
            self.pending = [p for p in self.pending if p.step_key[:size] != prefix]

    def out_of_time(self) -> bool:
        """Whether new work should wait for a fresh invocation (see `ensure_budget`)."""
        return (
            self.steps_started > 0
            and self.remaining_time() < self.settings.suspend_margin.total_seconds()
        )

    def ensure_budget(self, slot: Slot) -> None:
        """Suspend (to be continued by a fresh invocation) when the time budget is spent.

        Every invocation runs at least one new step first, so a run always progresses
        even when a single step takes longer than the margin.
        """
        if self.out_of_time():
            self.suspend(slot, "continue", self.clock.now())
        with self._lock:
            self.steps_started += 1

    # -- executing a step's code ---------------------------------------------------------

    def executing(self, slot: Slot) -> _Executing:
        """`with session.executing(slot) as started:` around the step's code."""
        return _Executing(self.clock, self.keeper, slot)


class _Executing:
    """Marks the step whose code runs (a class, not a generator: it is on the hot path)."""

    __slots__ = ("_clock", "_keeper", "_slot", "_token")

    def __init__(self, clock: Clock, keeper: LeaseKeeper | None, slot: Slot) -> None:
        self._clock, self._keeper, self._slot = clock, keeper, slot

    def __enter__(self) -> datetime:
        slot = self._slot
        started = self._clock.now()
        bind(step_id=slot.step_id)
        if self._keeper is not None:
            self._keeper.step_started(slot.step_id, started)
        self._token = _running_step.set((slot.step_id, slot.attempt - 1))
        return started

    def __exit__(self, *exc_info: object) -> None:
        # Also when a BaseException (a crash, SystemExit, a cancelled task) cuts the
        # step off: the marker must never outlive the step.
        _running_step.reset(self._token)
        if self._keeper is not None:
            self._keeper.step_ended(self._slot.step_id)


def _is_too_large_failure(record: StepRecord) -> bool:
    return (
        record.status is StepStatus.FAILED
        and record.error is not None
        and record.error.type == ErrorType.ITEM_TOO_LARGE
    )
