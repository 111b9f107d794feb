"""`step.sleep` and `step.sleep_until`: suspend the run until a time, holding no thread.

Replay: the position holds the sleep's record (SLEEPING, with its wake time). Once the
wake time has come the sleep is over and the call returns; before, it suspends again
until then (a timer that fires early leads here). Its end is never written: a replay
past the wake time needs nothing more, which saves a write per wake-up (see
StepRecord.elapsed).

First run: the sleep is recorded with one conditional put (already COMPLETED if the
time has passed), and the run suspends; the Runner arms the wake-up (an SQS delay up to
15 minutes, a Scheduler schedule beyond).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from engine.model import StepKind, StepRecord, StepStatus
from engine.session import Session, Slot
from sdk import WorkflowDefinitionError
from sdk._duration import Duration, parse_duration


async def sleep(session: Session, step_id: str, duration: Duration) -> None:
    delta = parse_duration(duration, what=f"step.sleep {step_id!r} duration")
    await _sleep(session, step_id, lambda now: now + delta)


async def sleep_until(session: Session, step_id: str, when: datetime | str) -> None:
    instant = parse_instant(when, what=f"step.sleep_until {step_id!r}")
    await _sleep(session, step_id, lambda _: instant)


async def _sleep(session: Session, step_id: str, until: Callable[[datetime], datetime]) -> None:
    slot = await session.open(StepKind.SLEEP, step_id)
    now = session.clock.now()
    if slot.record is not None:
        return _over_or_suspend(session, slot, now)
    wake_at = until(now)
    done = wake_at <= now
    await session.record(
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
    if session.plugins is not None:
        session.plugins.operation_start(slot.step_id, StepKind.SLEEP.value)
    return _over_or_suspend(session, slot, now, fresh=True)


def _over_or_suspend(session: Session, slot: Slot, now: datetime, *, fresh: bool = False) -> None:
    record = slot.record
    assert record is not None
    if record.settled or record.elapsed(now):
        if session.plugins is not None and (fresh or session.resumed_at(slot.key)):
            session.plugins.operation_settled_once(record, failed=False)
        return
    assert record.wake_at is not None
    session.suspend(slot, "sleep", record.wake_at)


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
