"""`step.run`: run a function once, record its result, and replay the record; the retry policy.

Replay: the step's position (`Session.open`) holds a record once an attempt ended.
COMPLETED returns the recorded output and FAILED raises its recorded error as
`StepError`, without calling the function; RETRYING before its retry time suspends again
until then. Nothing is written on replay. STARTED (an at-most-once attempt whose outcome
was never recorded) fails that attempt without running it again.

First run (or the next attempt): the time budget is checked (`Session.ensure_budget`),
the function is called (`UserCall`: awaited when it returns an awaitable), and its
outcome is written with one conditional put over the slot's revision
(`Session.record`), after which the workflow carries on in the same invocation. The
value returned is the stored JSON form, so the first run sees what replays will.

The step's options (engine/step_options.py: `retries`, `at_most_once`, `serdes`,
`timeout`) are None for a plain step, which then takes exactly the path above: one
conditional put per attempt, nothing else.

Failures go through the retry policy (`fail_attempt`; the step's own, or the workflow's):
a retriable failure records RETRYING with its backoff and suspends until then (a durable
timer, no thread waits); the last attempt, `NonRetriableError`, an unstorable result or a
bad argument records FAILED and raises `StepError`, which the workflow may catch.

`execute` is the machinery for every operation whose outcome is produced by running
something (send_event runs its publish through it); the effect to await is the
operation's.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, NoReturn

from engine.deadline import DeadlinePassed
from engine.driver import Effect, UserCall
from engine.errors import AttemptInterruptedError, StepOutputError, StepTimeoutError
from engine.logcontext import remember
from engine.model import (
    MAX_RECORDED_FAILURES,
    AttemptFailure,
    ErrorInfo,
    StepKind,
    StepRecord,
    StepStatus,
)
from engine.session import Session, Slot, step_error
from engine.step_options import StepOptions
from engine.values import to_record
from sdk import NonRetriableError, Retry, RetryAfterError, Serdes, WorkflowDefinitionError
from sdk._duration import Duration


async def run(
    session: Session,
    step_id: str,
    fn: Callable[..., Any],
    /,
    *args: Any,
    retries: Retry | None = None,
    at_most_once: bool = False,
    serdes: Serdes | None = None,
    timeout: Duration | None = None,
    **kwargs: Any,
) -> Any:
    if not callable(fn):
        raise WorkflowDefinitionError(f"step.run {step_id!r}: {fn!r} is not callable")
    options = StepOptions.of(
        f"step.run {step_id!r}",
        fn,
        retries=retries,
        at_most_once=at_most_once,
        serdes=serdes,
        timeout=timeout,
    )
    return await execute(
        session, StepKind.RUN, step_id, lambda _: UserCall(lambda: fn(*args, **kwargs)), options
    )


async def execute(
    session: Session,
    kind: StepKind,
    step_id: str,
    perform: Callable[[Slot], Effect[Any]],
    options: StepOptions | None = None,
) -> Any:
    """Replay the step at the next position, or run one attempt of it (`perform(slot)`)."""
    slot = await session.open(kind, step_id)
    record = slot.record
    if record is not None:
        if record.status is StepStatus.COMPLETED:
            return record.output if options is None else options.load(record.output)
        if record.status is StepStatus.FAILED:
            raise step_error(record)
        if record.status is StepStatus.STARTED:
            await _interrupted(session, slot, options)
        if record.wake_at is not None and record.wake_at > session.clock.now():
            session.suspend(slot, "retry", record.wake_at)
    if options is not None and options.wants_fresh_invocation(session):
        session.suspend(slot, "continue", session.clock.now())
    session.ensure_budget(slot)
    plugins = session.plugins
    if plugins is not None:
        if record is None:
            plugins.operation_start(slot.step_id, kind.value)
        plugins.attempt_start(slot.step_id, kind.value, slot.attempt)
    deadline = None
    if options is not None:
        if options.at_most_once:
            await _mark_started(session, slot)
        deadline = options.deadline(session)
    result: Any = None
    failure: Exception | None = None
    with session.executing(slot) as started:
        try:
            effect = perform(slot)
            if deadline is not None and isinstance(effect, UserCall):
                effect = UserCall(effect.call, deadline)
            result = await effect
        except DeadlinePassed:
            assert deadline is not None
            failure = StepTimeoutError(_timed_out(slot, deadline.seconds, options))
        except Exception as error:
            failure = error
    if failure is not None:
        await fail_attempt(session, slot, started, failure, options)
    return await succeed(session, slot, started, result, options)


async def succeed(
    session: Session, slot: Slot, started: datetime, value: Any, options: StepOptions | None = None
) -> Any:
    """Record the attempt's result as the step's output; returns its stored form."""
    serdes = options.serdes if options is not None else None
    try:
        output = to_record(
            f"step {slot.step_id!r}", value, serdes, max_bytes=session.settings.max_output_bytes
        )
    except StepOutputError as error:
        await fail_attempt(session, slot, started, error, options)
    previous = slot.record
    record = StepRecord(
        key=slot.key,
        id=slot.step_id,
        kind=slot.kind,
        status=StepStatus.COMPLETED,
        attempts=slot.attempt,
        output=output,
        started_at=previous.started_at if previous else started,
        ended_at=session.clock.now(),
        failures=previous.failures if previous else (),
        failures_dropped=previous.failures_dropped if previous else 0,
    )
    if session.settings.redact_fields:
        remember(output)
    await session.record(slot, record)
    plugins = session.plugins
    if plugins is not None:
        plugins.attempt_end(slot.step_id, slot.kind.value, record.attempts)
        plugins.operation_settled(record, failed=False)
    return output if options is None else options.load(output)


async def fail_attempt(
    session: Session,
    slot: Slot,
    started: datetime,
    error: Exception,
    options: StepOptions | None = None,
) -> NoReturn:
    """Record a failed attempt; retry later (suspend) or fail for good (StepError)."""
    attempt = slot.attempt
    policy = options.retries if options is not None and options.retries else None
    policy = policy or session.workflow.retries
    now = session.clock.now()
    info = ErrorInfo.from_exception(error)
    previous = slot.record
    first_started = previous.started_at if previous else started
    final = (
        # A nested step call or a bad argument will fail the same way every time.
        isinstance(error, NonRetriableError | StepOutputError | WorkflowDefinitionError)
        or attempt >= policy.max_attempts
    )
    plugins = session.plugins
    if final:
        record = StepRecord(
            key=slot.key,
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
        await session.record(slot, record)
        if plugins is not None:
            plugins.attempt_end(slot.step_id, slot.kind.value, attempt, error=info)
            plugins.operation_settled(record, failed=True)
        raise step_error(record)
    if isinstance(error, RetryAfterError):
        delay = error.delay
    else:
        delay = policy.delay_before(attempt + 1, session.clock.random())
    retry_at = now + delay
    record = StepRecord(
        key=slot.key,
        id=slot.step_id,
        kind=slot.kind,
        status=StepStatus.RETRYING,
        attempts=attempt,
        error=info,
        started_at=first_started,
        wake_at=retry_at,
        **_with_failure(
            previous,
            AttemptFailure(attempt=attempt, error=info.brief(), started_at=started, ended_at=now),
        ),
    )
    await session.record(slot, record)
    if plugins is not None:
        plugins.attempt_end(slot.step_id, slot.kind.value, attempt, error=info)
    session.logger.warning(
        "step %s attempt %d failed (%s); retrying at %s",
        slot.step_id,
        attempt,
        info,
        retry_at.isoformat(),
    )
    session.suspend(slot, "retry", retry_at)


async def _mark_started(session: Session, slot: Slot) -> None:
    """At-most-once: record that this attempt begins, before the function runs."""
    now = session.clock.now()
    previous = slot.record
    await session.record(
        slot,
        StepRecord(
            key=slot.key,
            id=slot.step_id,
            kind=slot.kind,
            status=StepStatus.STARTED,
            attempts=previous.attempts if previous else 0,
            started_at=previous.started_at if previous and previous.started_at else now,
            attempt_started_at=now,
            failures=previous.failures if previous else (),
            failures_dropped=previous.failures_dropped if previous else 0,
        ),
    )


async def _interrupted(session: Session, slot: Slot, options: StepOptions | None) -> NoReturn:
    """An at-most-once attempt began but its outcome was never recorded: it fails."""
    record = slot.record
    assert record is not None
    began = record.attempt_started_at or record.started_at or session.clock.now()
    error = AttemptInterruptedError(
        f"attempt {slot.attempt} of step {slot.step_id!r} began at {began.isoformat()} but "
        "its outcome was never recorded (the invocation running it was cut off); the step "
        "is at most once, so that attempt is not run again"
    )
    await fail_attempt(session, slot, began, error, options)


def _timed_out(slot: Slot, seconds: float, options: StepOptions | None) -> str:
    timeout = options.timeout.total_seconds() if options and options.timeout else seconds
    text = f"step {slot.step_id!r} attempt {slot.attempt} did not finish within "
    if seconds < timeout:
        return text + (
            f"the {seconds:.0f}s left of its invocation (its timeout is {timeout:g}s, more "
            "than a Lambda invocation can give it); it keeps running in the background and "
            "its result is discarded"
        )
    return (
        text
        + f"its timeout of {timeout:g}s; it keeps running in the background and its result is discarded"
    )


def _with_failure(previous: StepRecord | None, failure: AttemptFailure) -> dict[str, Any]:
    """The failures a retried step keeps once `failure` is added: the last few only."""
    failures = (*(previous.failures if previous else ()), failure)
    dropped = (previous.failures_dropped if previous else 0) + max(
        0, len(failures) - MAX_RECORDED_FAILURES
    )
    return {"failures": failures[-MAX_RECORDED_FAILURES:], "failures_dropped": dropped}
