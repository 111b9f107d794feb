"""`step.send_event`: publish events once, even across replays and crashes.

A send is a step run through `run.execute` whose attempt publishes instead of calling
user code, so it replays, records and retries exactly as `step.run` does: a replay
returns the recorded event ids without publishing. Event ids derive from the run's
secret, the step's key and the event's index (engine.ids.sent_event_id), so an attempt
that published but crashed before it was recorded publishes the same events again,
and whatever they trigger starts only once. The bus failing is the step's failure,
retried with the workflow's policy, so fixing it in time lets the run carry on.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.driver import Io
from engine.errors import PermanentError, TransientError
from engine.ids import sent_event_id
from engine.model import StepKind
from engine.operations.run import execute
from engine.session import Session, Slot
from sdk import Event, WorkflowDefinitionError


async def send_event(session: Session, step_id: str, events: Event | Sequence[Event]) -> list[str]:
    batch = [events] if isinstance(events, Event) else list(events)
    if not batch or not all(isinstance(event, Event) for event in batch):
        raise WorkflowDefinitionError(
            "send_event takes an Event or a non-empty list of Event objects"
        )
    run = session.loaded.run

    def publish(slot: Slot) -> list[str]:
        now = session.clock.now()
        stamped = [
            event.model_copy(
                update={
                    "id": event.id or sent_event_id(run.secret, run.run_id, slot.key, index),
                    "ts": event.ts or now,
                }
            )
            for index, event in enumerate(batch)
        ]
        try:
            return session.ports.bus.publish(stamped)
        except (TransientError, PermanentError) as error:
            # A bus outage (or a missing permission) is the step's failure: retried
            # with the step's policy, so fixing it in time lets the run carry on.
            raise RuntimeError(f"could not publish events: {error}") from error

    ids: list[str] = await execute(
        session, StepKind.SEND, step_id, lambda slot: Io(lambda: publish(slot))
    )
    return ids
