"""`step.run`: run a function once, record its result, and replay the record; the retry policy.

Replay: the step's position (`Session.open`) holds a record once an attempt ended.
COMPLETED returns the recorded output and FAILED raises its recorded error as
`StepError`, without calling the function; RETRYING before its retry time suspends again
until then. Nothing is written on replay.

First run (or the next attempt): the time budget is checked (`Session.ensure_budget`),
the function is called (`UserCall`: awaited when it returns an awaitable), and its
outcome is written with one conditional put over the slot's revision
(`Session.record`), after which the workflow carries on in the same invocation. The
value returned is the stored JSON form, so the first run sees what replays will.

Failures go through the workflow's retry policy (`fail_attempt`): a retriable failure
records RETRYING with its backoff and suspends until then (a durable timer, no thread
waits); the last attempt, `NonRetriableError`, an unstorable result or a bad argument
records FAILED and raises `StepError`, which the workflow may catch.

`execute` is the machinery for every operation whose outcome is produced by running
something (send_event runs its publish through it); the effect to await is the
operation's.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, NoReturn

from engine.driver import Effect, UserCall
from engine.errors import StepOutputError
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
from sdk import NonRetriableError, RetryAfterError, WorkflowDefinitionError


async def run(
    session: Session, step_id: str, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
) -> Any:
    if not callable(fn):
        raise WorkflowDefinitionError(f"step.run {step_id!r}: {fn!r} is not callable")
    return await execute(
        session, StepKind.RUN, step_id, lambda _: UserCall(lambda: fn(*args, **kwargs))
    )


async def execute(
    session: Session, kind: StepKind, step_id: str, perform: Callable[[Slot], Effect[Any]]
) -> Any:
    """Replay the step at the next position, or run one attempt of it (`perform(slot)`)."""
    slot = await session.open(kind, step_id)
    record = slot.record
    if record is not None:
        if record.status is StepStatus.COMPLETED:
            return record.output
        if record.status is StepStatus.FAILED:
            raise step_error(record)
        if record.wake_at is not None and record.wake_at > session.clock.now():
            session.suspend(slot, "retry", record.wake_at)
    session.ensure_budget(slot)
    result: Any = None
    failure: Exception | None = None
    with session.executing(slot) as started:
        try:
            result = await perform(slot)
        except Exception as error:
            failure = error
    if failure is not None:
        await fail_attempt(session, slot, started, failure)
    return await succeed(session, slot, started, result)


async def succeed(session: Session, slot: Slot, started: datetime, value: Any) -> Any:
    """Record the attempt's result as the step's output; returns its stored JSON form."""
    try:
        output = session.encode(f"step {slot.step_id!r}", value)
    except StepOutputError as error:
        await fail_attempt(session, slot, started, error)
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
    return output


async def fail_attempt(
    session: Session, slot: Slot, started: datetime, error: Exception
) -> NoReturn:
    """Record a failed attempt; retry later (suspend) or fail for good (StepError)."""
    attempt = slot.attempt
    policy = session.workflow.retries
    now = session.clock.now()
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
    session.logger.warning(
        "step %s attempt %d failed (%s); retrying at %s",
        slot.step_id,
        attempt,
        info,
        retry_at.isoformat(),
    )
    session.suspend(slot, "retry", retry_at)


def _with_failure(previous: StepRecord | None, failure: AttemptFailure) -> dict[str, Any]:
    """The failures a retried step keeps once `failure` is added: the last few only."""
    failures = (*(previous.failures if previous else ()), failure)
    dropped = (previous.failures_dropped if previous else 0) + max(
        0, len(failures) - MAX_RECORDED_FAILURES
    )
    return {"failures": failures[-MAX_RECORDED_FAILURES:], "failures_dropped": dropped}
