"""The bodies of Stepline's four Lambda functions, one per SQS queue.

| function | queue | what it does with each record |
|---|---|---|
| `handle_work` | work | advances the run the `WorkMessage` names (`Runner.handle`) |
| `handle_trigger` | trigger | starts the runs the event triggers (`EventRouter.trigger`) |
| `handle_waits` | waits | resolves the `wait_for_event` steps it matches; answers the callback a `stepline/callback.*` event names (engine/callbacks.py) |
| `handle_cancel` | cancel | cancels the runs whose `cancel_on` it matches |

Each takes Lambda's (event, context) and returns the partial batch response; `services`
defaults to the process's own, built from STEPLINE_* on the first invocation. The
modules of `handlers/` only name these for Lambda (template.yaml's `Handler`), and
`infra/local/` calls them as the Lambda service would, through `BY_QUEUE`: nothing in
the project imports `handlers/`.
"""

from __future__ import annotations

from typing import Any

from engine.callbacks import EVENTS as CALLBACK_EVENTS
from engine.model import Delivery, WorkMessage
from infra.lambda_batch import (
    LambdaContext,
    LambdaFunction,
    SQSRecord,
    decode_event,
    default_services,
    process_batch,
    receive_count,
    remaining_seconds,
)
from infra.wiring import Services

__all__ = ["BY_QUEUE", "handle_cancel", "handle_trigger", "handle_waits", "handle_work"]


def handle_work(
    event: dict[str, Any], context: LambdaContext | None, services: Services | None = None
) -> dict[str, Any]:
    """The engine, fed by the work queue: advances the run each message names."""
    svc = services or default_services()
    time_left = remaining_seconds(context)

    def handle(record: SQSRecord) -> None:
        message = WorkMessage.model_validate_json(record.body)
        delivery = Delivery(message_id=record.message_id, receive_count=receive_count(record))
        svc.runner.handle(message, delivery, time_left)

    return process_batch(event, "work", handle, svc)


def handle_trigger(
    event: dict[str, Any], context: LambdaContext | None, services: Services | None = None
) -> dict[str, Any]:
    """Fed by the trigger queue: starts the runs an event triggers."""
    svc = services or default_services()
    return process_batch(
        event, "trigger", lambda record: svc.router.trigger(decode_event(record, svc)), svc
    )


def handle_waits(
    event: dict[str, Any], context: LambdaContext | None, services: Services | None = None
) -> dict[str, Any]:
    """Fed by the waits queue: resolves the `wait_for_event` steps an event matches, and
    answers the callbacks that `stepline/callback.*` events name."""
    svc = services or default_services()

    def handle(record: SQSRecord) -> object:
        received = decode_event(record, svc)
        if received.name in CALLBACK_EVENTS:
            return svc.callbacks.handle_event(received)
        return svc.router.resolve_waits(received)

    return process_batch(event, "waits", handle, svc)


def handle_cancel(
    event: dict[str, Any], context: LambdaContext | None, services: Services | None = None
) -> dict[str, Any]:
    """Fed by the cancel queue: cancels runs whose `cancel_on` an event matches."""
    svc = services or default_services()
    return process_batch(
        event, "cancel", lambda record: svc.router.cancel_matching(decode_event(record, svc)), svc
    )


#: The function that consumes each queue, by queue role (as template.yaml wires them).
BY_QUEUE: dict[str, LambdaFunction] = {
    "trigger": handle_trigger,
    "waits": handle_waits,
    "cancel": handle_cancel,
    "work": handle_work,
}
