"""The replay core: runs a workflow function over its recorded history.

`Interpreter.execute()` calls the workflow function with a `Context` whose `step`
methods consult the history:

- a step whose outcome is recorded returns it (or re-raises its recorded failure as
  `StepError`) without running any code;
- the first step with no record runs inline, its outcome is written with one
  conditional put, and the function carries on in the same invocation;
- a step that cannot finish now (sleep, wait, invoke, retry backoff, or a nearly spent
  time budget) registers what it waits for and raises `SuspendRun`.

It returns an `Outcome` (Completed, Failed, Suspended, Abandoned) and performs no run
transitions itself: the `Runner` applies the outcome. The only writes made here are step
records (and, for `invoke`, creating the child run), each a compare-and-set, so a
concurrent invocation can never make a step's outcome be recorded twice.

Positions: each call of a step method takes the next position in its scope (the
workflow body, or one branch of a `parallel`). On replay the call at a position must
ask for the step id and kind recorded there; anything else is a `NonDeterminismError`.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, NoReturn, TypeVar

from engine.codec import to_stored_json
from engine.errors import (
    FailRun,
    InfrastructureFailure,
    StepOutputError,
    Superseded,
    SuspendRun,
)
from engine.ids import (
    MAX_POSITION,
    child_run_id,
    display_step_id,
    position_key,
    sent_event_id,
    waiter_key,
)
from engine.lease import LeaseKeeper
from engine.lifecycle import Lifecycle
from engine.logcontext import bind, remember
from engine.matching import wait_matches
from engine.model import (
    MAX_RECORDED_FAILURES,
    AttemptFailure,
    ErrorInfo,
    InvokeSpec,
    LoadedRun,
    ParentRef,
    StepKind,
    StepRecord,
    StepStatus,
    WaitSpec,
)
from engine.ports import (
    ItemTooLargeError,
    PermanentError,
    Ports,
    StepConflict,
    TransientError,
)
from engine.settings import EngineSettings
from sdk import (
    INVOKED_EVENT,
    App,
    AsyncContext,
    AsyncStep,
    Context,
    Event,
    NonRetriableError,
    RetryAfterError,
    Step,
    StepError,
    Workflow,
    WorkflowDefinitionError,
)
from sdk._duration import Duration, parse_duration
from sdk._expression import MISSING, Expression, check_match_path, lookup

T = TypeVar("T")
PendingKind = Literal["sleep", "retry", "wait", "invoke", "continue"]


# -- outcomes --------------------------------------------------------------------------


@dataclass(frozen=True)
class Pending:
    """Something a suspended run waits for."""

    step_key: str
    step_id: str
    kind: PendingKind
    wake_at: datetime | None

    @property
    def waiting(self) -> bool:
        return self.kind in ("wait", "invoke")


@dataclass(frozen=True)
class Completed:
    output: Any


@dataclass(frozen=True)
class Failed:
    error: ErrorInfo


@dataclass(frozen=True)
class Suspended:
    pending: tuple[Pending, ...]


@dataclass(frozen=True)
class Abandoned:
    reason: str


Outcome = Completed | Failed | Suspended | Abandoned


# -- scopes ----------------------------------------------------------------------------


@dataclass
class Scope:
    """The workflow body, or one branch of a parallel: positions count within it."""

    prefix: tuple[int, ...]
    next_position: int = 0
    occurrences: dict[str, int] = field(default_factory=dict)
    suspended: bool = False


@dataclass
class Slot:
    key: str
    step_id: str
    kind: StepKind
    record: StepRecord | None


_scope: contextvars.ContextVar[Scope] = contextvars.ContextVar("stepline_scope")
_running_step: contextvars.ContextVar[tuple[str, int] | None] = contextvars.ContextVar(
    "stepline_running_step", default=None
)


class _ReplayAwareLogger(logging.LoggerAdapter[logging.Logger]):
    """Drops records while the run replays recorded steps, so each line appears once."""

    def __init__(self, logger: logging.Logger, interpreter: Interpreter) -> None:
        super().__init__(logger, {"run_id": interpreter.run_id})
        self._interpreter = interpreter

    def isEnabledFor(self, level: int) -> bool:
        return not self._interpreter.replaying and self.logger.isEnabledFor(level)

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs


# -- the interpreter -------------------------------------------------------------------


class Interpreter:
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
        self.history: dict[str, StepRecord] = dict(loaded.steps)
        self._group_prefixes = {key.rsplit(".", 2)[0] for key in self.history if "." in key}
        self.pending: list[Pending] = []
        # New steps this invocation has started running (replayed ones do not count).
        self.steps_started = 0
        self.fatal: ErrorInfo | None = None
        # While the code re-runs what earlier invocations already ran: from the start (if
        # anything was recorded) until it reaches a step that is not simply replayed.
        self.replaying = bool(self.history)
        self._resume_points = frozenset(loaded.run.suspended_at)
        self._lock = threading.RLock()
        self.logger = _ReplayAwareLogger(logging.getLogger("stepline.workflow"), self)

    # -- running the function ------------------------------------------------------------

    def execute(self) -> Outcome:
        context_args: dict[str, Any] = {
            "event": self.loaded.event,
            "run_id": self.run_id,
            "workflow_id": self.workflow.id,
            "logger": self.logger,
            "attempt": _current_attempt,
        }
        # A context of its own: nothing the workflow sets (the scope, the running-step
        # marker) outlives this invocation in the thread, whatever interrupts it.
        return contextvars.copy_context().run(self._execute, context_args)

    def _execute(self, context_args: dict[str, Any]) -> Outcome:
        _scope.set(Scope(prefix=()))
        try:
            if self.workflow.is_async:
                actx = AsyncContext(step=_AsyncSteps(self), **context_args)
                output = _run_coroutine(self.workflow.fn, actx)
            else:
                output = self.workflow.fn(Context(step=_SyncSteps(self), **context_args))
        except SuspendRun:
            output = None
        except FailRun as failure:
            return Failed(failure.error)
        except Superseded:
            return Abandoned("another invocation recorded a step of this run first")
        except InfrastructureFailure as failure:
            raise failure.error from None
        except Exception as error:
            if self.fatal is None and not self.pending:
                return Failed(ErrorInfo.from_exception(error))
            output = None
        if self.fatal is not None:
            return Failed(self.fatal)
        if self.pending:
            return Suspended(tuple(self.pending))
        return Completed(output)

    # -- positions and determinism -------------------------------------------------------

    def open_slot(self, kind: StepKind, user_id: str) -> Slot:
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
        scope = self._enter_scope()
        position = scope.next_position
        scope.next_position += 1
        occurrence = scope.occurrences.get(user_id, 0) + 1
        scope.occurrences[user_id] = occurrence
        step_id = display_step_id(user_id, occurrence)
        key = position_key((*scope.prefix, position))
        with self._lock:
            record = self.history.get(key)
            is_group = key in self._group_prefixes
        if record is not None and (record.id != step_id or record.kind != kind):
            self._non_deterministic(key, f"step {record.id!r} ({record.kind})", step_id, kind)
        if record is None and is_group:
            self._non_deterministic(key, "a parallel group", step_id, kind)
        if key in self._resume_points:
            # The previous invocation stopped here: whatever the code does next, it does
            # for the first time (after an elapsed sleep, a resolved wait, a child's end).
            self.replaying = False
        if record is None or not (record.settled or record.elapsed(self.clock.now())):
            self.replaying = False
            if self.keeper is not None:
                # New work starts here (a step, an attempt, a wait, a sleep, a child):
                # not once the run was cancelled or claimed elsewhere.
                self.keeper.check()
        return Slot(key=key, step_id=step_id, kind=kind, record=record)

    def open_group(self) -> tuple[int, ...]:
        """Take a position for a parallel group; returns the prefix its branches extend."""
        scope = self._enter_scope()
        position = scope.next_position
        scope.next_position += 1
        path = (*scope.prefix, position)
        key = position_key(path)
        with self._lock:
            record = self.history.get(key)
        if record is not None:
            self._non_deterministic(key, f"step {record.id!r} ({record.kind})", "a parallel group")
        return path

    def _enter_scope(self) -> Scope:
        scope = _scope.get()
        if scope.suspended:
            # The code swallowed a SuspendRun and carried on: stop it again.
            raise SuspendRun()
        if scope.next_position > MAX_POSITION:
            self._fail(
                ErrorInfo(
                    type="HistoryLimitError",
                    message=f"run {self.run_id} called more than {MAX_POSITION} steps in one "
                    "scope; split the work into child workflows with step.invoke",
                )
            )
        return scope

    def _non_deterministic(
        self, key: str, recorded: str, asked: str, kind: StepKind | None = None
    ) -> NoReturn:
        asked_text = f"step {asked!r} ({kind})" if kind else asked
        self._fail(
            ErrorInfo(
                type="NonDeterminismError",
                message=(
                    f"run {self.run_id} is not deterministic at position {key}: the history "
                    f"recorded {recorded} there, but the code now asks for {asked_text}. "
                    "A workflow must call the same steps in the same order on every replay. "
                    "If you changed the workflow while runs were in flight, keep the old "
                    "order for those runs (branch on ctx.event or a version field), or "
                    "cancel them and start new ones; ids and kinds must not depend on "
                    "time, randomness or I/O outside steps."
                ),
            )
        )

    def _fail(self, error: ErrorInfo) -> NoReturn:
        self.fatal = error
        raise FailRun(error)

    # -- writing records -----------------------------------------------------------------

    def record(
        self,
        slot: Slot,
        record: StepRecord,
        *,
        on_conflict: Literal["supersede", "return"] = "supersede",
    ) -> StepRecord:
        """Write a step record over `slot.record` (compare-and-set).

        On a conflict another invocation or a resolver wrote first. For steps whose code
        ran here that means another invocation owns the run ("supersede"); for waits,
        invokes and sleeps the other writer settled it, and the current record is the
        answer ("return").
        """
        try:
            stored = self.ports.store.put_step(
                self.run_id, record.model_copy(update={"key": slot.key}), expected=slot.record
            )
        except StepConflict as conflict:
            if on_conflict == "supersede" or conflict.current is None:
                raise Superseded() from None
            stored = conflict.current
        except ItemTooLargeError as error:
            if _is_too_large_failure(record):
                raise InfrastructureFailure(error) from None
            self._fail_too_large(slot, record, error)
        except (TransientError, PermanentError) as error:
            raise InfrastructureFailure(error) from None
        with self._lock:
            self.history[slot.key] = stored
        slot.record = stored
        return stored

    def _fail_too_large(
        self, slot: Slot, refused: StepRecord, error: ItemTooLargeError
    ) -> NoReturn:
        """The store refused a step's record as too large: the step fails, not the message.

        Outputs, errors and waits are kept under the item limit by construction, so this
        is a last resort; it records a small FAILED record and raises StepError, which the
        workflow may catch like any step failure.
        """
        info = ErrorInfo(
            type=TOO_LARGE_ERROR_TYPE,
            message=(
                f"step {slot.step_id!r} could not be recorded: its record is over DynamoDB's "
                f"400 KB item size limit ({error}). Keep a step's output under "
                f"{self.settings.max_output_bytes:,} bytes of JSON; store large data "
                "elsewhere (S3, your database) and return a reference."
            ),
        )
        self.record(
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

    def suspend(self, slot: Slot, kind: PendingKind, wake_at: datetime | None) -> NoReturn:
        with self._lock:
            self.pending.append(Pending(slot.key, slot.step_id, kind, wake_at))
        _scope.get().suspended = True
        raise SuspendRun()

    def ensure_budget(self, slot: Slot) -> None:
        """Suspend (to be continued by a fresh invocation) when the time budget is spent.

        Every invocation runs at least one new step first, so a run always progresses
        even when a single step takes longer than the margin.
        """
        if (
            self.steps_started > 0
            and self.remaining_time() < self.settings.suspend_margin.total_seconds()
        ):
            self.suspend(slot, "continue", self.clock.now())
        with self._lock:
            self.steps_started += 1

    def encode(self, what: str, value: Any) -> Any:
        return to_stored_json(what, value, max_bytes=self.settings.max_output_bytes)

    # -- step.run and step.send_event ----------------------------------------------------

    def begin_run(self, kind: StepKind, step_id: str) -> tuple[Slot, bool, Any]:
        """Replay a recorded step, or prepare to run it: (slot, replayed, value)."""
        slot = self.open_slot(kind, step_id)
        record = slot.record
        if record is not None:
            if record.status is StepStatus.COMPLETED:
                return slot, True, record.output
            if record.status is StepStatus.FAILED:
                raise _step_error(record)
            if record.wake_at is not None and record.wake_at > self.clock.now():
                self.suspend(slot, "retry", record.wake_at)
        self.ensure_budget(slot)
        return slot, False, None

    def attempt_of(self, slot: Slot) -> int:
        return (slot.record.attempts if slot.record else 0) + 1

    def succeed(self, slot: Slot, started: datetime, value: Any) -> Any:
        attempt = self.attempt_of(slot)
        try:
            output = self.encode(f"step {slot.step_id!r}", value)
        except StepOutputError as error:
            self.fail_attempt(slot, started, error)
        previous = slot.record
        record = StepRecord(
            id=slot.step_id,
            kind=slot.kind,
            status=StepStatus.COMPLETED,
            attempts=attempt,
            output=output,
            started_at=previous.started_at if previous else started,
            ended_at=self.clock.now(),
            failures=previous.failures if previous else (),
            failures_dropped=previous.failures_dropped if previous else 0,
        )
        if self.settings.redact_fields:
            remember(output)
        self.record(slot, record)
        return output

    def fail_attempt(self, slot: Slot, started: datetime, error: Exception) -> NoReturn:
        """Record a failed attempt; retry later (suspend) or fail for good (StepError)."""
        attempt = self.attempt_of(slot)
        policy = self.workflow.retries
        now = self.clock.now()
        info = ErrorInfo.from_exception(error)
        previous = slot.record
        first_started = previous.started_at if previous else started
        final = (
            # A nested step call or a bad argument will fail the same way every time.
            isinstance(error, NonRetriableError | StepOutputError | WorkflowDefinitionError)
            or attempt >= policy.max_attempts
        )
        if final:
            record = StepRecord(
                id=slot.step_id,
                kind=slot.kind,
                status=StepStatus.FAILED,
                attempts=attempt,
                error=info,
                started_at=first_started,
                ended_at=now,
                failures=previous.failures if previous else (),
                failures_dropped=previous.failures_dropped if previous else 0,
            )
            self.record(slot, record)
            raise StepError(slot.step_id, info.type, info.message)
        if isinstance(error, RetryAfterError):
            delay = error.delay
        else:
            delay = policy.delay_before(attempt + 1, self.clock.random())
        retry_at = now + delay
        record = StepRecord(
            id=slot.step_id,
            kind=slot.kind,
            status=StepStatus.RETRYING,
            attempts=attempt,
            error=info,
            started_at=first_started,
            wake_at=retry_at,
            **_with_failure(
                previous,
                AttemptFailure(
                    attempt=attempt, error=info.brief(), started_at=started, ended_at=now
                ),
            ),
        )
        self.record(slot, record)
        self.logger.warning(
            "step %s attempt %d failed (%s); retrying at %s",
            slot.step_id,
            attempt,
            info,
            retry_at.isoformat(),
        )
        self.suspend(slot, "retry", retry_at)

    def run_sync(self, kind: StepKind, step_id: str, call: Callable[[Slot], Any]) -> Any:
        slot, replayed, value = self.begin_run(kind, step_id)
        if replayed:
            return value
        started = self._step_started(slot)
        token = _running_step.set((slot.step_id, self.attempt_of(slot) - 1))
        try:
            result = call(slot)
            if isinstance(result, Coroutine):
                result = _run_coroutine(lambda _: result, None)
        except Exception as error:
            error_to_record: Exception | None = error
        else:
            error_to_record = None
        finally:
            # Also when a BaseException (a crash, SystemExit, a cancelled task) cuts the
            # step off: the marker must never outlive the step.
            _running_step.reset(token)
            self._step_ended(slot)
        if error_to_record is not None:
            self.fail_attempt(slot, started, error_to_record)
        return self.succeed(slot, started, result)

    async def run_async(self, kind: StepKind, step_id: str, call: Callable[[Slot], Any]) -> Any:
        slot, replayed, value = self.begin_run(kind, step_id)
        if replayed:
            return value
        started = self._step_started(slot)
        token = _running_step.set((slot.step_id, self.attempt_of(slot) - 1))
        try:
            result = call(slot)
            if isinstance(result, Awaitable):
                result = await result
        except Exception as error:
            error_to_record: Exception | None = error
        else:
            error_to_record = None
        finally:
            _running_step.reset(token)
            self._step_ended(slot)
        if error_to_record is not None:
            self.fail_attempt(slot, started, error_to_record)
        return self.succeed(slot, started, result)

    def _step_started(self, slot: Slot) -> datetime:
        started = self.clock.now()
        bind(step_id=slot.step_id)
        if self.keeper is not None:
            self.keeper.step_started(slot.step_id, started)
        return started

    def _step_ended(self, slot: Slot) -> None:
        if self.keeper is not None:
            self.keeper.step_ended(slot.step_id)

    def publisher(self, events: Event | Sequence[Event]) -> Callable[[Slot], list[str]]:
        batch = [events] if isinstance(events, Event) else list(events)
        if not batch or not all(isinstance(event, Event) for event in batch):
            raise WorkflowDefinitionError(
                "send_event takes an Event or a non-empty list of Event objects"
            )

        def publish(slot: Slot) -> list[str]:
            now = self.clock.now()
            stamped = [
                event.model_copy(
                    update={
                        "id": event.id
                        or sent_event_id(self.loaded.run.secret, self.run_id, slot.key, index),
                        "ts": event.ts or now,
                    }
                )
                for index, event in enumerate(batch)
            ]
            try:
                return self.ports.bus.publish(stamped)
            except (TransientError, PermanentError) as error:
                # A bus outage (or a missing permission) is the step's failure: retried
                # with the step's policy, so fixing it in time lets the run carry on.
                raise RuntimeError(f"could not publish events: {error}") from error

        return publish

    # -- sleeps --------------------------------------------------------------------------

    def sleep(self, step_id: str, until: Callable[[datetime], datetime]) -> None:
        slot = self.open_slot(StepKind.SLEEP, step_id)
        now = self.clock.now()
        record = slot.record
        if record is None:
            wake_at = until(now)
            done = wake_at <= now
            record = self.record(
                slot,
                StepRecord(
                    id=slot.step_id,
                    kind=StepKind.SLEEP,
                    status=StepStatus.COMPLETED if done else StepStatus.SLEEPING,
                    started_at=now,
                    ended_at=now if done else None,
                    wake_at=wake_at,
                ),
            )
        if record.settled or record.elapsed(now):
            # Over: its end is not written (see StepRecord.elapsed), which saves a write
            # per wake-up.
            return
        assert record.wake_at is not None
        self.suspend(slot, "sleep", record.wake_at)

    # -- waits ---------------------------------------------------------------------------

    def wait_for_event(
        self,
        step_id: str,
        *,
        event: str,
        timeout: Duration,
        match: str | None,
        if_: str | None,
    ) -> Event | None:
        what = f"wait_for_event {step_id!r}"
        if not isinstance(event, str) or not event.strip():
            raise WorkflowDefinitionError(f"{what}: event must be a non-empty event name")
        wait_for = parse_duration(timeout, what=f"{what} timeout")
        if match is not None:
            check_match_path(match, what=what)
        if if_ is not None:
            Expression(if_, what=what)
        slot = self.open_slot(StepKind.WAIT, step_id)
        if slot.record is not None:
            return self._wait_outcome(slot)
        trigger = self.loaded.event
        value: object = None
        if match is not None:
            value = lookup(trigger, match)
            if value is MISSING:
                raise WorkflowDefinitionError(
                    f"{what}: match={match!r}, but the trigger event {trigger.name!r} has no "
                    f"{match}; no event could ever match it"
                )
        now = self.clock.now()
        since, exclude = self._lookback_window(event, now)
        spec = WaitSpec(
            event=event,
            index_key=waiter_key(event, match, value),
            match=match,
            if_=if_,
            since=since,
            exclude=exclude,
            workflow_id=self.workflow.id,
        )
        try:
            self.ports.index.add_wait_path(event, match)
        except (TransientError, PermanentError) as error:
            raise InfrastructureFailure(error) from None
        self.record(
            slot,
            StepRecord(
                id=slot.step_id,
                kind=StepKind.WAIT,
                status=StepStatus.WAITING,
                started_at=now,
                wake_at=now + wait_for,
                wait=spec,
                indexed=True,
            ),
        )
        # Registered first, looked back second: an event stored before our lookback query
        # is found here, and one stored after it finds our registration in the index.
        try:
            earlier = self.ports.events.events_since(event, since, now=now)
        except (TransientError, PermanentError) as error:
            raise InfrastructureFailure(error) from None
        for candidate in earlier:
            if wait_matches(spec, candidate, trigger):
                self._settle_wait(slot, candidate)
                return self._wait_outcome(slot)
        return self._wait_outcome(slot)

    def _lookback_window(self, event_name: str, now: datetime) -> tuple[datetime, tuple[str, ...]]:
        """Events a new wait may still see: since the run began, minus ones already used.

        Only used events received at or after `since` need excluding (earlier ones are
        out of the window anyway), so the exclusions do not grow with the run's history.
        """
        run = self.loaded.run
        since = max(run.lookback_start, now - self.settings.lookback)
        # (id, time received) of the events already used: the trigger itself never
        # resolves a wait of its own run.
        used: list[tuple[str, datetime | None]] = [(run.event_id, run.event_ts)]
        with self._lock:
            records = list(self.history.values())
        for record in records:
            if (
                record.kind is StepKind.WAIT
                and record.wait is not None
                and record.wait.event == event_name
                and record.status is StepStatus.COMPLETED
                and isinstance(record.output, dict)
            ):
                used_ts = record.output.get("ts")
                received = datetime.fromisoformat(used_ts) if used_ts else None
                used.append((str(record.output.get("id")), received))
                if received is not None:
                    since = max(since, received)
        exclude = tuple(
            dict.fromkeys(
                event_id for event_id, received in used if received is None or received >= since
            )
        )
        return since, exclude

    def _settle_wait(self, slot: Slot, event: Event) -> None:
        assert slot.record is not None
        remember(event.data)
        self.record(
            slot,
            slot.record.model_copy(
                update={
                    "status": StepStatus.COMPLETED,
                    "output": event.model_dump(mode="json"),
                    "ended_at": self.clock.now(),
                    "indexed": False,
                }
            ),
            on_conflict="return",
        )

    def _wait_outcome(self, slot: Slot) -> Event | None:
        record = slot.record
        assert record is not None
        if record.status is StepStatus.COMPLETED:
            if record.indexed:
                # The resolver left it indexed until we saw it; take it out now.
                self.record(
                    slot, record.model_copy(update={"indexed": False}), on_conflict="return"
                )
            return Event.model_validate(record.output)
        if record.status in (StepStatus.TIMED_OUT, StepStatus.CANCELLED):
            return None
        now = self.clock.now()
        if record.wake_at is not None and record.wake_at <= now:
            settled = self.record(
                slot,
                record.model_copy(
                    update={"status": StepStatus.TIMED_OUT, "ended_at": now, "indexed": False}
                ),
                on_conflict="return",
            )
            if settled.status is StepStatus.COMPLETED:
                return self._wait_outcome(slot)
            return None
        self.suspend(slot, "wait", record.wake_at)

    # -- invoke --------------------------------------------------------------------------

    def invoke(
        self,
        step_id: str,
        *,
        workflow: str | Workflow,
        data: dict[str, Any] | None,
        timeout: Duration | None,
    ) -> Any:
        what = f"step.invoke {step_id!r}"
        workflow_id = workflow.id if isinstance(workflow, Workflow) else workflow
        child = self.app.get(workflow_id) if isinstance(workflow_id, str) else None
        if child is None:
            raise WorkflowDefinitionError(
                f"{what}: app {self.app.name!r} has no workflow {workflow_id!r} "
                f"(it has {sorted(self.app.workflows)})"
            )
        wait_for = parse_duration(timeout, what=f"{what} timeout") if timeout is not None else None
        payload = self.encode(f"{what} data", data or {})
        if not isinstance(payload, dict):
            raise WorkflowDefinitionError(f"{what}: data must be a JSON object (a dict)")
        slot = self.open_slot(StepKind.INVOKE, step_id)
        if slot.record is None:
            now = self.clock.now()
            child_id = child_run_id(child.id, self.run_id, slot.key)
            # The child is created before the step is recorded: if we crash in between,
            # the replay creates it again (idempotent) instead of waiting on nothing.
            try:
                self.lifecycle.start_run(
                    child,
                    Event(name=INVOKED_EVENT, data=payload, id=child_id, ts=now),
                    run_id=child_id,
                    parent=ParentRef(run_id=self.run_id, step_key=slot.key, step_id=slot.step_id),
                )
            except (TransientError, PermanentError) as error:
                raise InfrastructureFailure(error) from None
            # A fast child may have settled this step before we record it: keep its answer.
            self.record(
                slot,
                StepRecord(
                    id=slot.step_id,
                    kind=StepKind.INVOKE,
                    status=StepStatus.WAITING,
                    started_at=now,
                    wake_at=now + wait_for if wait_for is not None else None,
                    invoke=InvokeSpec(workflow=child.id, child_run_id=child_id),
                ),
                on_conflict="return",
            )
        return self._invoke_outcome(slot)

    def _invoke_outcome(self, slot: Slot) -> Any:
        record = slot.record
        assert record is not None
        if record.status is StepStatus.COMPLETED:
            return record.output
        if record.settled:
            raise _step_error(record)
        now = self.clock.now()
        if record.wake_at is not None and record.wake_at <= now:
            child = record.invoke.child_run_id if record.invoke else "?"
            waited = record.wake_at - (record.started_at or record.wake_at)
            self.record(
                slot,
                record.model_copy(
                    update={
                        "status": StepStatus.TIMED_OUT,
                        "ended_at": now,
                        "error": ErrorInfo(
                            type="InvokeTimeoutError",
                            message=f"child run {child} did not finish within {waited}",
                        ),
                    }
                ),
                on_conflict="return",
            )
            return self._invoke_outcome(slot)
        self.suspend(slot, "invoke", record.wake_at)

    # -- parallel ------------------------------------------------------------------------

    def parallel_sync(self, branches: Sequence[Callable[[], T]]) -> list[T]:
        _check_branches(branches)
        if not branches:
            return []
        prefix = self.open_group()

        def run_branch(index: int) -> tuple[str, Any]:
            _scope.set(Scope(prefix=(*prefix, index)))
            try:
                return "ok", branches[index]()
            except SuspendRun:
                return "suspended", None
            except (FailRun, Superseded, InfrastructureFailure) as fatal:
                return "fatal", fatal
            except Exception as error:
                return "error", error

        if len(branches) == 1:
            settled = [contextvars.copy_context().run(run_branch, 0)]
        else:
            workers = min(len(branches), self.settings.max_parallel_threads)
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="stepline") as pool:
                futures = [
                    pool.submit(contextvars.copy_context().run, run_branch, index)
                    for index in range(len(branches))
                ]
                settled = [future.result() for future in futures]
        return self._join(settled)

    async def parallel_async(self, branches: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
        _check_branches(branches)
        if not branches:
            return []
        prefix = self.open_group()

        async def run_branch(index: int) -> tuple[str, Any]:
            _scope.set(Scope(prefix=(*prefix, index)))
            try:
                return "ok", await branches[index]()
            except SuspendRun:
                return "suspended", None
            except (FailRun, Superseded, InfrastructureFailure) as fatal:
                return "fatal", fatal
            except Exception as error:
                return "error", error

        import asyncio  # only async workflows need it (and it costs ~7 ms to import)

        settled = await asyncio.gather(*(run_branch(index) for index in range(len(branches))))
        return self._join(list(settled))

    def _join(self, settled: list[tuple[str, Any]]) -> list[Any]:
        """Every branch has settled: surface, in argument order, what must surface."""
        for status, value in settled:
            if status == "fatal":
                raise value
        if any(status == "suspended" for status, _ in settled):
            _scope.get().suspended = True
            raise SuspendRun()
        for status, value in settled:
            if status == "error":
                raise value
        return [value for _, value in settled]


def _check_branches(branches: Sequence[Any]) -> None:
    if not all(callable(branch) for branch in branches):
        raise WorkflowDefinitionError(
            "parallel takes callables, e.g. "
            "ctx.step.parallel(lambda: ctx.step.run('a', f), lambda: ctx.step.run('b', g))"
        )


def _with_failure(previous: StepRecord | None, failure: AttemptFailure) -> dict[str, Any]:
    """The failures a retried step keeps once `failure` is added: the last few only."""
    failures = (*(previous.failures if previous else ()), failure)
    dropped = (previous.failures_dropped if previous else 0) + max(
        0, len(failures) - MAX_RECORDED_FAILURES
    )
    return {"failures": failures[-MAX_RECORDED_FAILURES:], "failures_dropped": dropped}


TOO_LARGE_ERROR_TYPE = "ItemTooLargeError"


def _is_too_large_failure(record: StepRecord) -> bool:
    return (
        record.status is StepStatus.FAILED
        and record.error is not None
        and record.error.type == TOO_LARGE_ERROR_TYPE
    )


def _step_error(record: StepRecord) -> StepError:
    error = record.error or ErrorInfo(type="Error", message="step failed")
    return StepError(record.id, error.type, error.message)


def _current_attempt() -> int:
    running = _running_step.get()
    return running[1] if running else 0


def _run_coroutine(fn: Callable[[Any], Any], argument: Any) -> Any:
    """Run an async workflow (or step) to completion from sync code."""
    import asyncio  # imported here: sync-only apps never pay for it at cold start

    async def main() -> Any:
        return await fn(argument)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    # Called from inside a running loop (a test harness, a notebook): use a thread.
    context = contextvars.copy_context()
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(context.run, asyncio.run, main()).result()


def parse_instant(when: datetime | str, *, what: str) -> datetime:
    """An aware datetime from a datetime or ISO 8601 text; naive values are taken as UTC."""
    if isinstance(when, str):
        try:
            when = datetime.fromisoformat(when)
        except ValueError:
            raise WorkflowDefinitionError(
                f"{what}: {when!r} is not an ISO 8601 date-time such as '2026-03-01T09:00:00Z'"
            ) from None
    if not isinstance(when, datetime):
        raise WorkflowDefinitionError(f"{what}: expected a datetime or ISO 8601 text, got {when!r}")
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


# -- the Step implementations handed to user code --------------------------------------


class _SyncSteps(Step):
    def __init__(self, interpreter: Interpreter) -> None:
        self._interpreter = interpreter

    def run(self, step_id: str, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        if not callable(fn):
            raise WorkflowDefinitionError(f"step.run {step_id!r}: {fn!r} is not callable")
        return self._interpreter.run_sync(StepKind.RUN, step_id, lambda _: fn(*args, **kwargs))  # type: ignore[no-any-return]

    def sleep(self, step_id: str, duration: Duration) -> None:
        delta = parse_duration(duration, what=f"step.sleep {step_id!r} duration")
        self._interpreter.sleep(step_id, lambda now: now + delta)

    def sleep_until(self, step_id: str, when: datetime | str) -> None:
        instant = parse_instant(when, what=f"step.sleep_until {step_id!r}")
        self._interpreter.sleep(step_id, lambda _: instant)

    def wait_for_event(
        self,
        step_id: str,
        *,
        event: str,
        timeout: Duration,
        match: str | None = None,
        if_: str | None = None,
    ) -> Event | None:
        return self._interpreter.wait_for_event(
            step_id, event=event, timeout=timeout, match=match, if_=if_
        )

    def send_event(self, step_id: str, events: Event | Sequence[Event]) -> list[str]:
        publish = self._interpreter.publisher(events)
        return self._interpreter.run_sync(StepKind.SEND, step_id, publish)  # type: ignore[no-any-return]

    def invoke(
        self,
        step_id: str,
        *,
        workflow: str | Workflow,
        data: dict[str, Any] | None = None,
        timeout: Duration | None = None,
    ) -> Any:
        return self._interpreter.invoke(step_id, workflow=workflow, data=data, timeout=timeout)

    def parallel(self, *branches: Callable[[], T]) -> list[T]:
        return self._interpreter.parallel_sync(branches)


class _AsyncSteps(AsyncStep):
    def __init__(self, interpreter: Interpreter) -> None:
        self._interpreter = interpreter

    async def run(self, step_id: str, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        if not callable(fn):
            raise WorkflowDefinitionError(f"step.run {step_id!r}: {fn!r} is not callable")
        return await self._interpreter.run_async(
            StepKind.RUN, step_id, lambda _: fn(*args, **kwargs)
        )

    async def sleep(self, step_id: str, duration: Duration) -> None:
        delta = parse_duration(duration, what=f"step.sleep {step_id!r} duration")
        self._interpreter.sleep(step_id, lambda now: now + delta)

    async def sleep_until(self, step_id: str, when: datetime | str) -> None:
        instant = parse_instant(when, what=f"step.sleep_until {step_id!r}")
        self._interpreter.sleep(step_id, lambda _: instant)

    async def wait_for_event(
        self,
        step_id: str,
        *,
        event: str,
        timeout: Duration,
        match: str | None = None,
        if_: str | None = None,
    ) -> Event | None:
        return self._interpreter.wait_for_event(
            step_id, event=event, timeout=timeout, match=match, if_=if_
        )

    async def send_event(self, step_id: str, events: Event | Sequence[Event]) -> list[str]:
        publish = self._interpreter.publisher(events)
        return await self._interpreter.run_async(StepKind.SEND, step_id, publish)  # type: ignore[no-any-return]

    async def invoke(
        self,
        step_id: str,
        *,
        workflow: str | Workflow,
        data: dict[str, Any] | None = None,
        timeout: Duration | None = None,
    ) -> Any:
        return self._interpreter.invoke(step_id, workflow=workflow, data=data, timeout=timeout)

    async def parallel(self, *branches: Callable[[], Awaitable[T]]) -> list[T]:
        return await self._interpreter.parallel_async(branches)


__all__ = [
    "Abandoned",
    "Completed",
    "Failed",
    "Interpreter",
    "Outcome",
    "Pending",
    "Suspended",
    "parse_instant",
]
