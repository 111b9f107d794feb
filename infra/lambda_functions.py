"""The bodies of Stepline's Lambda functions: one per SQS queue, and one for deploys.

| function | queue | what it does with each record |
|---|---|---|
| `handle_work` | work | advances the run the `WorkMessage` names (`Runner.handle`) |
| `handle_events` | events | everything an event does (`EventRouter.route`): starts the runs it triggers, resolves the `wait_for_event` steps it matches, cancels the runs whose `cancel_on` it matches; answers the callback a `stepline/callback.*` event names (engine/callbacks.py) |
| `handle_app_sync` | (none: CloudFormation calls it) | the `CronSchedules` and `EventRules` custom resources: keep the app's Cron schedules and the bus's rules (the event names the app uses) in step with each deploy |

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
from engine.event_names import routed_event_names
from engine.model import Delivery, WorkMessage
from infra.cron_schedules import CronScheduleSync
from infra.custom_resource import Respond, answer, put_response
from infra.event_rules import EventRules, stack_rules
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
    "EVENT_RULES_TYPE",
    "handle_app_sync",
    "handle_events",
    "handle_work",
]

#: The CloudFormation type of the `EventRules` custom resource (template.yaml).
EVENT_RULES_TYPE = "Custom::StepLineEventRules"


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


def handle_events(
    event: dict[str, Any], context: LambdaContext | None, services: Services | None = None
) -> dict[str, Any]:
    """Fed by the events queue: everything each event does (`EventRouter.route`), after
    answering the callback a `stepline/callback.*` event names."""
    svc = services or default_services()

    def handle(record: SQSRecord) -> object:
        received = decode_event(record, svc)
        if received.name in CALLBACK_EVENTS:
            svc.callbacks.handle_event(received)
        return svc.router.route(received)

    return process_batch(event, "events", handle, svc)


def handle_app_sync(
    event: dict[str, Any],
    context: LambdaContext | None,
    services: Services | None = None,
    respond: Respond = put_response,
) -> dict[str, Any]:
    """The stack's custom resources (infra/custom_resource.py), by resource type: on
    Create and Update (every deploy of new code) they make the stack's cron schedules
    (`CronSchedules`, infra/cron_schedules.py) and bus rules (`EventRules`,
    infra/event_rules.py) those of the app it loads; on Delete they delete them. An app
    that does not import fails the deploy, with the reason."""
    if event.get("ResourceType") == EVENT_RULES_TYPE:
        return _event_rules(event, services, respond)
    return _cron_schedules(event, services, respond)


def _cron_schedules(
    event: dict[str, Any], services: Services | None, respond: Respond
) -> dict[str, Any]:
    def schedules() -> tuple[Services, CronScheduleSync]:
        svc = services or default_services()
        settings = svc.settings
        if not settings.events_queue_arn or not settings.scheduler_role_arn:
            raise ValueError(
                "STEPLINE_EVENTS_QUEUE_ARN and STEPLINE_SCHEDULER_ROLE_ARN must be set "
                "(template.yaml sets them) to sync cron schedules"
            )
        return svc, CronScheduleSync(
            svc.clients.scheduler,
            group=settings.schedule_group,
            target_arn=settings.events_queue_arn,
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


def _event_rules(
    event: dict[str, Any], services: Services | None, respond: Respond
) -> dict[str, Any]:
    def rules() -> tuple[Services, EventRules]:
        svc = services or default_services()
        return svc, stack_rules(svc.clients.events, svc.settings)

    def apply() -> dict[str, int]:
        svc, sync = rules()
        names = routed_event_names(svc.app)
        report = sync.sync(names)
        log.info("event rules of %s (%d names): %s", svc.app.name, len(names), report.summary())
        return {
            "Names": len(names),
            "Created": len(report.created),
            "Updated": len(report.updated),
            "Deleted": len(report.deleted),
        }

    def remove() -> dict[str, int]:
        _, sync = rules()
        return {"Deleted": len(sync.delete_all().deleted)}

    return answer(event, apply=apply, remove=remove, respond=respond)


#: The function that consumes each queue, by queue role (as template.yaml wires them).
BY_QUEUE: dict[str, LambdaFunction] = {
    "events": handle_events,
    "work": handle_work,
}
