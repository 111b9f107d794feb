"""The AWS resources Stepline needs, as data: one definition shared by everything.

`template.yaml` declares these for real deployments; `create_resources` builds the same
shapes on moto (LocalRuntime, `stepline dev`) or on any endpoint (`stepline worker
--create-resources`). `tests/test_template.py` checks the two agree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from engine.event_names import routed_event_names
from infra.clients import Clients
from infra.cron_schedules import CronScheduleSync
from infra.event_rules import stack_rules
from infra.settings import DEFAULT_EVENT_BUS, Settings
from sdk import App

TABLE_KEYS = ("pk", "sk")
RUNS_INDEX = "runs"
TTL_ATTRIBUTE = "ttl"

TABLE_DEFINITION: dict[str, Any] = {
    "KeySchema": [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ],
    "AttributeDefinitions": [
        {"AttributeName": name, "AttributeType": "S"} for name in ("pk", "sk", "g2pk", "g2sk")
    ],
    "GlobalSecondaryIndexes": [
        {
            # Runs by creation month (in shards) and time. Waits and cancel rules need
            # no index: their entries are items found by a strongly consistent Query
            # (infra/dynamo_index.py), so no lag can hide one. Keys only: status changes then never
            # rewrite the index, which keeps each run transition to one write unit.
            "IndexName": RUNS_INDEX,
            "KeySchema": [
                {"AttributeName": "g2pk", "KeyType": "HASH"},
                {"AttributeName": "g2sk", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        },
    ],
    "BillingMode": "PAY_PER_REQUEST",
}

# Consumers of each queue, and how many receives a message gets before the DLQ.
MAX_RECEIVE_COUNT = 5


@dataclass(frozen=True)
class QueueNames:
    """The two queues: `work` (run advances, the engine function) and `events` (every
    event the app uses, the events function: start runs, resolve waits, cancel runs)."""

    work: str
    events: str

    def all(self) -> dict[str, str]:
        return {"work": self.work, "events": self.events}


def queue_names(prefix: str) -> QueueNames:
    return QueueNames(work=f"{prefix}-work", events=f"{prefix}-events")


# The queue the bus's rules feed (infra/event_rules.py): one queue, one delivery per event.
EVENT_QUEUES = ("events",)


@dataclass(frozen=True)
class Created:
    settings: Settings
    queue_urls: dict[str, str]
    dlq_urls: dict[str, str]


def create_resources(clients: Clients, prefix: str, *, bus: str = DEFAULT_EVENT_BUS) -> Created:
    """Create the table, queues (with DLQs), bus and schedule group; idempotent. The
    bus's rules depend on the app: `sync_with_app` makes them."""
    dynamodb, sqs, events, scheduler = (
        clients.dynamodb,
        clients.sqs,
        clients.events,
        clients.scheduler,
    )
    table = prefix
    existing = dynamodb.list_tables().get("TableNames", [])
    if table not in existing:
        dynamodb.create_table(TableName=table, **TABLE_DEFINITION)
        dynamodb.update_time_to_live(
            TableName=table,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
        )
    names = queue_names(prefix)
    queue_urls, dlq_urls, arns = {}, {}, {}
    for role, name in names.all().items():
        dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        url = sqs.create_queue(
            QueueName=name,
            Attributes={
                "VisibilityTimeout": "60",
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)}
                ),
            },
        )["QueueUrl"]
        queue_urls[role], dlq_urls[role] = url, dlq_url
        arns[role] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
    if bus != "default":
        try:
            events.create_event_bus(Name=bus)
        except events.exceptions.ResourceAlreadyExistsException:
            pass
    try:
        scheduler.create_schedule_group(Name=prefix)
    except scheduler.exceptions.ConflictException:
        pass
    settings = Settings(
        table=table,
        work_queue_url=queue_urls["work"],
        work_queue_arn=arns["work"],
        schedule_group=prefix,
        scheduler_role_arn=f"arn:aws:iam::123456789012:role/{prefix}-scheduler",
        events_queue_arn=arns["events"],
        event_bus=bus,
    )
    return Created(settings=settings, queue_urls=queue_urls, dlq_urls=dlq_urls)


def discover_resources(clients: Clients, prefix: str, *, bus: str = DEFAULT_EVENT_BUS) -> Created:
    """Find resources `create_resources` made earlier (by name), for workers and the CLI."""
    sqs = clients.sqs
    queue_urls, dlq_urls = {}, {}
    for role, name in queue_names(prefix).all().items():
        queue_urls[role] = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        dlq_urls[role] = sqs.get_queue_url(QueueName=f"{name}-dlq")["QueueUrl"]
    work_arn, events_arn = (
        sqs.get_queue_attributes(QueueUrl=queue_urls[role], AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        for role in ("work", "events")
    )
    settings = Settings(
        table=prefix,
        work_queue_url=queue_urls["work"],
        work_queue_arn=work_arn,
        schedule_group=prefix,
        scheduler_role_arn=f"arn:aws:iam::123456789012:role/{prefix}-scheduler",
        events_queue_arn=events_arn,
        event_bus=bus,
    )
    return Created(settings=settings, queue_urls=queue_urls, dlq_urls=dlq_urls)


def sync_with_app(clients: Clients, settings: Settings, app: App) -> list[str]:
    """What a deploy of `app` does beyond the stack's fixed resources (template.yaml's
    custom resources): the schedule group's cron schedules become those of its Crons,
    and the bus's rules list the event names it uses (so only they reach the events
    queue). LocalRuntime, `stepline dev` and `stepline worker --create-resources` call
    it when they start, and `LocalRuntime.deploy` with each new version. Returns the
    event names the rules now route."""
    CronScheduleSync(
        clients.scheduler,
        group=settings.schedule_group,
        target_arn=settings.events_queue_arn,
        role_arn=settings.scheduler_role_arn,
    ).sync(app)
    names = routed_event_names(app)
    stack_rules(clients.events, settings).sync(names)
    return names
