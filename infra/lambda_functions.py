"""The bodies of Stepline's four Lambda functions, one per SQS queue.

| function | queue | what it does with each record |
|---|---|---|
| `handle_work` | work | advances the run the `WorkMessage` names (`Runner.handle`) |
| `handle_trigger` | trigger | starts the runs the event triggers (`EventRouter.trigger`) |
| `handle_waits` | waits | resolves the `wait_for_event` steps it matches; answers the callback a `stepline/callback.*` event names (engine/callbacks.py) |
| `handle_cancel` | cancel | cancels the runs whose `cancel_on` it matches |
| `handle_cron_schedules` | (none: CloudFormation calls it) | the `CronSchedules` custom resource: keeps the app's Cron schedules in step with each deploy |

Each takes Lambda's (event, context) and returns the partial batch response; `services`
defaults to the process's own, built from STEPLINE_* on the first invocation. The
modules of `handlers/` only name these for Lambda (template.yaml's `Handler`), and
`infra/local/` calls them as the Lambda service would, through `BY_QUEUE`: nothing in
the project imports `handlers/`.
"""

from __future__ import annotations

import logging
from typing import Any

from engine.callbacks import EVENTS as CALLBACK_EVENTS
from engine.model import Delivery, WorkMessage
from infra.cron_schedules import CronScheduleSync
from infra.custom_resource import Respond, answer, put_response
from infra.lambda_batch import (
    LambdaContext,
    LambdaFunction,
    SQSRecord,
    decode_event,
    default_services,
    process_batch,
    receive_count,
    remaining_seconds,
    run_of,
)
from infra.wiring import Services

log = logging.getLogger("stepline.handlers")

__all__ = [
    "BY_QUEUE",
    "handle_cancel",
    "handle_cron_schedules",
    "handle_trigger",
    "handle_waits",
    "handle_work",
]


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

    return process_batch(event, "work", handle, svc, group_of=run_of)


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


def handle_cron_schedules(
    event: dict[str, Any],
    context: LambdaContext | None,
    services: Services | None = None,
    respond: Respond = put_response,
) -> dict[str, Any]:
    """The stack's `CronSchedules` custom resource (infra/custom_resource.py): on Create
    and Update (every deploy of new code) it makes the schedule group's cron schedules
    those of the app it loads (infra/cron_schedules.py); on Delete it deletes them.
    An app that does not import fails the deploy, with the reason."""

    def schedules() -> tuple[Services, CronScheduleSync]:
        svc = services or default_services()
        settings = svc.settings
        if not settings.trigger_queue_arn or not settings.scheduler_role_arn:
            raise ValueError(
                "STEPLINE_TRIGGER_QUEUE_ARN and STEPLINE_SCHEDULER_ROLE_ARN must be set "
                "(template.yaml sets them) to sync cron schedules"
            )
        return svc, CronScheduleSync(
            svc.clients.scheduler,
            group=settings.schedule_group,
            target_arn=settings.trigger_queue_arn,
            role_arn=settings.scheduler_role_arn,
        )

    def apply() -> dict[str, int]:
        svc, sync = schedules()
        report = sync.sync(svc.app)
        log.info("cron schedules of %s: %s", svc.app.name, report.summary())
        return {
            "Created": len(report.created),
            "Updated": len(report.updated),
            "Deleted": len(report.deleted),
            "Unchanged": len(report.unchanged),
        }

    def remove() -> dict[str, int]:
        _, sync = schedules()
        return {"Deleted": len(sync.delete_all().deleted)}

    return answer(event, apply=apply, remove=remove, respond=respond)


#: The function that consumes each queue, by queue role (as template.yaml wires them).
BY_QUEUE: dict[str, LambdaFunction] = {
    "trigger": handle_trigger,
    "waits": handle_waits,
    "cancel": handle_cancel,
    "work": handle_work,
}
