"""`step.create_callback` and `step.wait_for_callback`: wait for another system to answer.

Create: the callback takes one position and is recorded WAITING with one conditional put,
holding a secret of 128 random bits (Clock.token) and its deadline: the earlier of its
`timeout` and its `heartbeat_timeout` (counted from creation, then from each heartbeat).
Its id (engine.ids.callback_id) is the run id, the step's key and the secret; the
workflow hands it to another system, and replays return the same id from the record.

Result (`cb.result()`): COMPLETED returns the result it was completed with (with
`serdes`, deserialised from its text); FAILED raises `StepError` with the type and
message the completer gave; a deadline passed settles it TIMED_OUT here (unless the
completion won the race: then that is the answer) and raises `StepError`
(`CallbackTimeoutError`); otherwise the run suspends, waiting, until the completion
wakes it or the deadline's timer fires. A heartbeat moves the deadline on without waking
the run: if the earlier deadline's timer fires, the run finds the later one and sleeps
again. Completing, failing and heartbeating are engine/callbacks.py's.

`wait_for_callback(id, submitter)` is one operation made of three (a scope, see
engine/operations/child.py): the callback ("callback"), the step that hands its id to
the other system (`submitter(callback_id)`, "submit", retried like any step), and the
wait for the result. Its result is recorded once, at its own position.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from engine.driver import UserCall, drive_async, drive_sync
from engine.errors import CallbackTimeoutError
from engine.ids import StepKey, callback_id
from engine.model import CallbackSpec, ErrorInfo, StepKind, StepRecord, StepStatus
from engine.operations.batch import ScopeFailure
from engine.operations.child import run_scope
from engine.operations.run import execute
from engine.session import Session, Slot, step_error
from engine.values import from_record
from sdk import AsyncCallback, Callback, Serdes, StepError, WorkflowDefinitionError
from sdk._duration import Duration, parse_duration
from sdk._serdes import check_serdes


async def create_callback(
    session: Session,
    step_id: str,
    *,
    timeout: Duration | None = None,
    heartbeat_timeout: Duration | None = None,
    serdes: Serdes | None = None,
) -> Callback | AsyncCallback:
    what = f"step.create_callback {step_id!r}"
    limits = _limits(what, timeout, heartbeat_timeout)
    checked = check_serdes(serdes, what=what)
    slot = await open_callback(session, step_id, *limits)
    key = slot.key
    assert slot.record is not None and slot.record.callback is not None
    token = callback_id(session.run_id, key, slot.record.callback.secret)
    if session.workflow.is_async:
        return AsyncCallback(token, lambda: drive_async(callback_result(session, key, checked)))
    return Callback(token, lambda: drive_sync(callback_result(session, key, checked)))


async def wait_for_callback(
    session: Session,
    step_id: str,
    submitter: Callable[[str], Any],
    *,
    timeout: Duration | None = None,
    heartbeat_timeout: Duration | None = None,
    serdes: Serdes | None = None,
) -> Any:
    what = f"step.wait_for_callback {step_id!r}"
    if not callable(submitter):
        raise WorkflowDefinitionError(
            f"{what}: {submitter!r} is not callable; give submitter(callback_id)"
        )
    limits = _limits(what, timeout, heartbeat_timeout)
    checked = check_serdes(serdes, what=what)

    async def body() -> Any:
        slot = await open_callback(session, "callback", *limits)
        assert slot.record is not None and slot.record.callback is not None
        token = callback_id(session.run_id, slot.key, slot.record.callback.secret)
        await execute(session, StepKind.RUN, "submit", lambda _: UserCall(lambda: submitter(token)))
        try:
            return await callback_result(session, slot.key, None)
        except StepError as error:
            # Failed or timed out: the workflow sees the callback's own type and message.
            info = ErrorInfo(type=error.error_type, message=error.error_message)
            raise ScopeFailure(info) from None

    # Recorded as the completer gave it; deserialised on the way out, every time.
    stored = await run_scope(session, StepKind.WAIT_FOR_CALLBACK, step_id, body, None)
    return from_record(stored, checked)


def _limits(
    what: str, timeout: Duration | None, heartbeat_timeout: Duration | None
) -> tuple[timedelta | None, timedelta | None]:
    limits = []
    for name, value in (("timeout", timeout), ("heartbeat_timeout", heartbeat_timeout)):
        limit = parse_duration(value, what=f"{what} {name}") if value is not None else None
        if limit is not None and limit <= timedelta(0):
            raise WorkflowDefinitionError(f"{what}: {name} must be longer than zero")
        limits.append(limit)
    return limits[0], limits[1]


def deadline(spec: CallbackSpec, started_at: datetime) -> datetime | None:
    """When a waiting callback expires: its timeout, or its heartbeat deadline if earlier."""
    candidates = [spec.timeout_at] if spec.timeout_at is not None else []
    if spec.heartbeat_timeout is not None:
        beat = spec.heartbeat_at or started_at
        candidates.append(beat + timedelta(seconds=spec.heartbeat_timeout))
    return min(candidates, default=None)


async def open_callback(
    session: Session,
    step_id: str,
    timeout: timedelta | None,
    heartbeat_timeout: timedelta | None,
) -> Slot:
    """The callback at the next position, recorded WAITING if it is new."""
    slot = await session.open(StepKind.CALLBACK, step_id)
    if slot.record is not None:
        return slot
    now = session.clock.now()
    spec = CallbackSpec(
        secret=session.clock.token(),
        timeout_at=now + timeout if timeout is not None else None,
        heartbeat_timeout=heartbeat_timeout.total_seconds() if heartbeat_timeout else None,
    )
    await session.record(
        slot,
        StepRecord(
            id=slot.step_id,
            kind=StepKind.CALLBACK,
            status=StepStatus.WAITING,
            started_at=now,
            wake_at=deadline(spec, now),
            callback=spec,
        ),
        on_conflict="return",
    )
    if session.plugins is not None:
        session.plugins.operation_start(slot.step_id, StepKind.CALLBACK.value)
    return slot


async def callback_result(session: Session, key: StepKey, serdes: Serdes | None) -> Any:
    """`cb.result()`: the outcome if settled, else suspend until it is (module docstring)."""
    slot = session.slot_of(key)
    record = slot.record
    assert record is not None
    now = session.clock.now()
    if record.status is StepStatus.WAITING and record.wake_at is not None and record.wake_at <= now:
        record = await session.record(
            slot,
            record.model_copy(
                update={
                    "status": StepStatus.TIMED_OUT,
                    "ended_at": now,
                    "error": _timeout_error(record),
                }
            ),
            on_conflict="return",
        )
        _report_end(session, record)
    elif record.settled and session.resumed_at(key):
        _report_end(session, record)
    if record.status is StepStatus.COMPLETED:
        return from_record(record.output, serdes)
    if record.settled:
        raise step_error(record)
    session.suspend(slot, "wait", record.wake_at)


def _report_end(session: Session, record: StepRecord) -> None:
    plugins = session.plugins
    if plugins is not None and record.settled:
        plugins.operation_settled_once(record, failed=record.status is not StepStatus.COMPLETED)


def _timeout_error(record: StepRecord) -> ErrorInfo:
    spec = record.callback
    started = record.started_at
    if spec is not None and spec.timeout_at is not None and record.wake_at == spec.timeout_at:
        waited = spec.timeout_at - (started or spec.timeout_at)
        message = f"callback {record.id!r} was not completed within {waited}"
    elif spec is not None and spec.heartbeat_timeout is not None:
        last = spec.heartbeat_at or started
        message = (
            f"callback {record.id!r} missed its heartbeat: none within "
            f"{timedelta(seconds=spec.heartbeat_timeout)} of "
            + (
                f"the last one ({last.isoformat()})"
                if spec.heartbeat_at and last
                else "its creation"
            )
        )
    else:
        message = f"callback {record.id!r} timed out"
    return ErrorInfo(type=CallbackTimeoutError.__name__, message=message)
