"""`step.wait_for_condition`: poll durably until a condition holds.

The poll takes one position. Each poll is an attempt: `check(state)` runs (as a step's
function: it cannot call steps) and returns the new state, which is stored (with
`serdes`, as its text); then `until(state)` decides. If it holds, the record becomes
COMPLETED with the state, which is returned (now and on every replay). If not, the
record becomes RETRYING with the state and the time of the next poll, `interval` later
(5 s by default), and the run sleeps until then (a durable timer; no thread waits): the
next invocation resumes from the recorded state, so the poll is durable across
invocations and crashes. One conditional put per poll.

Past `max_attempts` polls the record becomes FAILED and `StepError` is raised
(`ConditionNotMetError`, naming the last state); an exception from `check` or `until`
fails the poll the same way (catch it inside `check` to keep polling).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, NoReturn

from engine.driver import UserCall
from engine.errors import ConditionNotMetError, StepOutputError
from engine.model import ErrorInfo, StepKind, StepRecord, StepStatus
from engine.session import Session, Slot, step_error
from engine.values import from_record, to_record
from sdk import Serdes, WorkflowDefinitionError
from sdk._duration import Duration, parse_duration
from sdk._serdes import check_serdes

DEFAULT_INTERVAL = timedelta(seconds=5)


async def wait_for_condition(
    session: Session,
    step_id: str,
    check: Callable[[Any], Any],
    *,
    initial_state: Any = None,
    until: Callable[[Any], Any],
    interval: Duration | None = None,
    max_attempts: int | None = None,
    serdes: Serdes | None = None,
) -> Any:
    what = f"step.wait_for_condition {step_id!r}"
    if not callable(check) or not callable(until):
        raise WorkflowDefinitionError(
            f"{what}: check(state) -> state and until(state) -> bool must be functions"
        )
    pause = parse_duration(interval, what=f"{what} interval") if interval is not None else None
    pause = pause or DEFAULT_INTERVAL
    if pause <= timedelta(0):
        raise WorkflowDefinitionError(f"{what}: interval must be longer than zero")
    if max_attempts is not None and (
        isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1
    ):
        raise WorkflowDefinitionError(f"{what}: max_attempts must be a whole number >= 1")
    checked = check_serdes(serdes, what=what)
    slot = await session.open(StepKind.CONDITION, step_id)
    record = slot.record
    state = initial_state
    if record is not None:
        if record.status is StepStatus.COMPLETED:
            return from_record(record.output, checked)
        if record.status is StepStatus.FAILED:
            raise step_error(record)
        if record.wake_at is not None and record.wake_at > session.clock.now():
            session.suspend(slot, "retry", record.wake_at)
        if record.attempts:
            state = from_record(record.output, checked)
    session.ensure_budget(slot)
    plugins = session.plugins
    attempt = slot.attempt
    if plugins is not None:
        if record is None:
            plugins.operation_start(slot.step_id, StepKind.CONDITION.value)
        plugins.attempt_start(slot.step_id, StepKind.CONDITION.value, attempt)
    with session.executing(slot):
        try:
            stored = to_record(
                what,
                await UserCall(lambda: check(state)),
                checked,
                max_bytes=session.settings.max_output_bytes,
            )
            value = from_record(stored, checked)
            done = bool(await UserCall(lambda: until(value)))
        except Exception as error:
            await _fail(
                session,
                slot,
                ErrorInfo.from_exception(
                    error, with_traceback=not isinstance(error, StepOutputError)
                ),
                None,
            )
    now = session.clock.now()
    if done:
        record = await session.record(slot, _record(slot, StepStatus.COMPLETED, stored, now))
        if plugins is not None:
            plugins.attempt_end(slot.step_id, StepKind.CONDITION.value, attempt)
            plugins.operation_settled(record, failed=False)
        return value
    if max_attempts is not None and attempt >= max_attempts:
        await _fail(
            session,
            slot,
            ErrorInfo(
                type=ConditionNotMetError.__name__,
                message=f"the condition of {slot.step_id!r} did not hold after {attempt} "
                f"polls; the last state was {_preview(stored)}",
            ),
            stored,
        )
    wake_at = now + pause
    await session.record(slot, _record(slot, StepStatus.RETRYING, stored, now, wake_at=wake_at))
    if plugins is not None:
        plugins.attempt_end(slot.step_id, StepKind.CONDITION.value, attempt)
    session.suspend(slot, "retry", wake_at)


def _record(slot: Slot, status: StepStatus, stored: Any, now: Any, **extra: Any) -> StepRecord:
    previous = slot.record
    return StepRecord(
        id=slot.step_id,
        kind=StepKind.CONDITION,
        status=status,
        attempts=slot.attempt,
        output=stored,
        started_at=previous.started_at if previous else now,
        ended_at=None if status is StepStatus.RETRYING else now,
        **extra,
    )


async def _fail(session: Session, slot: Slot, error: ErrorInfo, stored: Any) -> NoReturn:
    now = session.clock.now()
    record = _record(slot, StepStatus.FAILED, stored, now).model_copy(update={"error": error})
    record = await session.record(slot, record)
    plugins = session.plugins
    if plugins is not None:
        plugins.attempt_end(slot.step_id, StepKind.CONDITION.value, slot.attempt, error=error)
        plugins.operation_settled(record, failed=True)
    raise step_error(record)


def _preview(value: Any, width: int = 200) -> str:
    import json

    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"
