"""`step.wait_for_event`: suspend until a matching event arrives, or the timeout passes.

Replay: the position holds the wait's record. COMPLETED returns the event it recorded
(taking the record out of the waiter index if the resolver left it there); TIMED_OUT and
CANCELLED return None; WAITING past its timeout is settled TIMED_OUT here (unless a
resolver settled it first: then its event is the answer); otherwise the run suspends
again.

First run: the wait is registered (its match path noted for the event's name, then a
WAITING record indexed under its key: one conditional put), and only then does it look
back at the events already received, so an event stored before the look-back is found
by it and one stored after finds the registration. The look-back reads the wait's own
key (events of the name are also kept under the key of each match path they know) once
its path has been known for longer than the wait's window, else the name's whole log. A matching earlier event settles the
wait at once; otherwise the run suspends until an event resolves the wait (engine/events.py
writes the record and wakes the run) or its timeout's timer fires.
"""

from __future__ import annotations

from datetime import datetime

from engine.ids import waiter_key
from engine.logcontext import remember
from engine.matching import wait_matches
from engine.model import StepKind, StepRecord, StepStatus, WaitSpec
from engine.session import Session, Slot
from engine.settings import KEYED_LOOKBACK_MARGIN
from sdk import Event, WorkflowDefinitionError
from sdk._duration import Duration, parse_duration
from sdk._expression import Expression
from sdk._paths import MISSING, check_match_path, lookup


async def wait_for_event(
    session: Session,
    step_id: str,
    *,
    event: str,
    timeout: Duration,
    match: str | None = None,
    if_: str | None = None,
) -> Event | None:
    what = f"wait_for_event {step_id!r}"
    if not isinstance(event, str) or not event.strip():
        raise WorkflowDefinitionError(f"{what}: event must be a non-empty event name")
    wait_for = parse_duration(timeout, what=f"{what} timeout")
    if match is not None:
        check_match_path(match, what=what)
    if if_ is not None:
        Expression(if_, what=what)
    slot = await session.open(StepKind.WAIT, step_id)
    if slot.record is not None:
        return await _outcome(session, slot)
    trigger = session.loaded.event
    value: object = None
    if match is not None:
        value = lookup(trigger, match)
        if value is MISSING:
            raise WorkflowDefinitionError(
                f"{what}: match={match!r}, but the trigger event {trigger.name!r} has no "
                f"{match}; no event could ever match it"
            )
    now = session.clock.now()
    since, exclude = _lookback_window(session, event, now)
    spec = WaitSpec(
        event=event,
        index_key=waiter_key(event, match, value),
        match=match,
        if_=if_,
        since=since,
        exclude=exclude,
        workflow_id=session.workflow.id,
    )
    index = session.ports.index
    # Events of a name computed at run time reach Stepline only once the bus routes it
    # (engine/event_names.py); names the app's code spells out are routed at deploy.
    await session.call_port(lambda: session.ports.bus.route(event))
    path_known_since = await session.call_port(lambda: index.add_wait_path(event, match, now=now))
    await session.record(
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
    # Registered first, looked back second (see the module docstring).
    log = session.ports.events
    if path_known_since + KEYED_LOOKBACK_MARGIN <= since:
        # Every event of this name since `since` was also kept under this wait's key (its
        # value's, or, without match, the name's, spread): read that, not every shard of
        # the name's log.
        key, spread = spec.index_key, match is None
        earlier = await session.call_port(
            lambda: log.events_for_key(key, since, now=now, spread=spread)
        )
    else:
        earlier = await session.call_port(lambda: log.events_since(event, since, now=now))
    if session.plugins is not None:
        session.plugins.operation_start(slot.step_id, StepKind.WAIT.value)
    for candidate in earlier:
        if wait_matches(spec, candidate, trigger):
            await _settle(session, slot, candidate)
            break
    return await _outcome(session, slot, fresh=True)


def _lookback_window(
    session: Session, event_name: str, now: datetime
) -> tuple[datetime, tuple[str, ...]]:
    """Events a new wait may still see: since the run began, minus ones already used.

    Only used events received at or after `since` need excluding (earlier ones are out
    of the window anyway), so the exclusions do not grow with the run's history.
    """
    run = session.loaded.run
    since = max(run.lookback_start, now - session.settings.lookback)
    # (id, time received) of the events already used: the trigger itself never
    # resolves a wait of its own run.
    used: list[tuple[str, datetime | None]] = [(run.event_id, run.event_ts)]
    for record in session.recorded():
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


async def _settle(session: Session, slot: Slot, event: Event) -> None:
    assert slot.record is not None
    remember(event.data)
    await session.record(
        slot,
        slot.record.model_copy(
            update={
                "status": StepStatus.COMPLETED,
                "output": event.model_dump(mode="json"),
                "ended_at": session.clock.now(),
                "indexed": False,
            }
        ),
        on_conflict="return",
    )


async def _outcome(session: Session, slot: Slot, *, fresh: bool = False) -> Event | None:
    record = slot.record
    assert record is not None
    if session.plugins is not None and record.settled and (fresh or session.resumed_at(slot.key)):
        session.plugins.operation_settled_once(record, failed=False)
    if record.status is StepStatus.COMPLETED:
        if record.indexed:
            # The resolver left it indexed until we saw it; take it out now.
            await session.record(
                slot, record.model_copy(update={"indexed": False}), on_conflict="return"
            )
        return Event.model_validate(record.output)
    if record.status in (StepStatus.TIMED_OUT, StepStatus.CANCELLED):
        return None
    now = session.clock.now()
    if record.wake_at is not None and record.wake_at <= now:
        settled = await session.record(
            slot,
            record.model_copy(
                update={"status": StepStatus.TIMED_OUT, "ended_at": now, "indexed": False}
            ),
            on_conflict="return",
        )
        if session.plugins is not None:
            session.plugins.operation_settled_once(settled, failed=False)
        if settled.status is StepStatus.COMPLETED:
            return await _outcome(session, slot)
        return None
    session.suspend(slot, "wait", record.wake_at)
