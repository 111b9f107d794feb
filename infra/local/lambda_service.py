"""Playing the Lambda service: SQS batches to the functions, and due schedules to the queue.

On AWS, an SQS event source mapping receives batches, invokes the function with them and
deletes what it reports as processed; EventBridge Scheduler sends a due schedule's input
to its target. Locally nothing does that, so `LocalRuntime`, `stepline dev` and
`stepline worker` do it with these functions. The functions invoked are those Lambda
runs (infra/lambda_functions.py, `BY_QUEUE`), with a Lambda-shaped event and context.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from engine.ids import timer_name
from infra.cron_schedules import PREFIX as CRON_PREFIX
from infra.lambda_batch import LambdaFunction
from infra.wiring import Services

if TYPE_CHECKING:
    from mypy_boto3_scheduler import EventBridgeSchedulerClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

log = logging.getLogger("stepline.worker")

_SCHEDULE_AT = "%Y-%m-%dT%H:%M:%S"
REGION = "us-east-1"


@dataclass
class FakeLambdaContext:
    """Enough of a Lambda context for the handlers: the time budget, mostly."""

    function_name: str
    timeout: timedelta
    started: float
    aws_request_id: str = "local"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:local"

    def get_remaining_time_in_millis(self) -> int:
        elapsed = time.monotonic() - self.started
        return max(0, int((self.timeout.total_seconds() - elapsed) * 1000))


def lambda_sqs_event(messages: Iterable[MessageTypeDef], *, queue_arn: str) -> dict[str, Any]:
    """The event Lambda's SQS event source mapping passes a handler for these messages."""
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message.get("Attributes", {}),
                "messageAttributes": message.get("MessageAttributes", {}),
                "md5OfBody": message.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
            for message in messages
        ]
    }


@dataclass(frozen=True)
class BatchResult:
    received: int
    failed: list[MessageTypeDef]
    crashed: bool
    # Wall time of each handler invocation (what Lambda would bill).
    seconds: tuple[float, ...] = ()


def deliver_batch(
    sqs: SQSClient,
    *,
    queue_url: str,
    queue_arn: str,
    role: str,
    handler: LambdaFunction,
    services: Services,
    lambda_timeout: timedelta,
    visibility_timeout: int,
    wait_seconds: int = 0,
    invocations: int = 1,
) -> BatchResult:
    """Receive up to 10 messages, invoke the handler, delete the ones it processed.

    Failed messages stay on the queue (SQS redelivers them after their visibility
    timeout, and moves them to the DLQ after maxReceiveCount). `invocations` > 1 hands
    the same batch to the handler again, as SQS's at-least-once delivery may.
    """
    messages = sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=10,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
        VisibilityTimeout=visibility_timeout,
        WaitTimeSeconds=wait_seconds,
    ).get("Messages", [])
    if not messages:
        return BatchResult(0, [], False)
    event = lambda_sqs_event(messages, queue_arn=queue_arn)
    failed_ids: set[str] = set()
    crashed = False
    seconds: list[float] = []
    for _ in range(invocations):
        started = time.monotonic()
        context = FakeLambdaContext(f"stepline-{role}", lambda_timeout, started)
        try:
            response = handler(event, context, services=services)
        except KeyboardInterrupt:
            raise
        except BaseException as error:
            # The invocation died: Lambda returns every message of the batch to the queue.
            log.error(
                "%s handler died (%s) with %d message(s) in hand; they will be redelivered",
                role,
                type(error).__name__,
                len(messages),
            )
            crashed = True
            failed_ids |= {message["MessageId"] for message in messages}
            continue
        finally:
            seconds.append(time.monotonic() - started)
        failed_ids |= {item["itemIdentifier"] for item in response.get("batchItemFailures", [])}
    done = [m for m in messages if m["MessageId"] not in failed_ids]
    if done:
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)
            ],
        )
    failed = [m for m in messages if m["MessageId"] in failed_ids]
    return BatchResult(len(messages), failed, crashed, tuple(seconds))


def retry_now(sqs: SQSClient, queue_url: str, messages: list[MessageTypeDef]) -> None:
    """Make failed messages visible again at once instead of after the timeout."""
    if messages:
        sqs.change_message_visibility_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                for i, m in enumerate(messages)
            ],
        )


# What every run timer's name starts with (engine/ids.py).
_TIMER_PREFIX = timer_name("", 0).split("-")[0] + "-"


def list_schedule_names(scheduler: EventBridgeSchedulerClient, *, group: str) -> list[str]:
    """The names of every schedule in `group`, all pages of them: ListSchedules returns
    at most 100 a page on AWS (moto: 50), and a backlog of long timers (runs sleeping past
    15 minutes, or a throttle's reservations that far ahead) is far more than one page."""
    names: list[str] = []
    token: str | None = None
    while True:
        page = (
            scheduler.list_schedules(GroupName=group, NextToken=token)
            if token
            else scheduler.list_schedules(GroupName=group)
        )
        names.extend(summary["Name"] for summary in page.get("Schedules", []))
        token = page.get("NextToken")
        if not token:
            return names


def _named_due(name: str) -> datetime | None:
    """A run timer's fire time, from its name (engine/ids.py `timer_name`), if it is one."""
    prefix, _, epoch = name.rpartition("-")
    if not prefix.startswith(_TIMER_PREFIX) or not epoch.isdigit():
        return None
    return datetime.fromtimestamp(int(epoch), tz=UTC)


def fire_due_schedules(
    scheduler: EventBridgeSchedulerClient,
    sqs: SQSClient,
    *,
    group: str,
    now: datetime,
    queue_url_of: dict[str, str],
) -> int:
    """Do what EventBridge Scheduler would: send each due `at()` schedule's input to its
    target queue, then delete the schedule. Returns how many fired.

    Reads every page of the group's schedules (a first page alone left the due timers on
    later pages unfired: a throttle's backlog starved once it had over 50 long timers). A
    run timer's name carries its fire time, so one not yet due costs no GetSchedule.

    Safe to run in several processes at once: a schedule fired twice sends two messages,
    and the engine treats the second as a stale wake-up.
    """
    fired = 0
    for name in list_schedule_names(scheduler, group=group):
        if name.startswith(CRON_PREFIX):
            continue  # a Cron's recurring schedule: infra/local/cron_pump.py fires those
        named = _named_due(name)
        if named is not None and named > now:
            continue
        try:
            schedule = scheduler.get_schedule(Name=name, GroupName=group)
        except scheduler.exceptions.ResourceNotFoundException:
            continue  # another worker fired it meanwhile
        expression = schedule["ScheduleExpression"]
        if not expression.startswith("at("):
            continue
        due = datetime.strptime(expression[3:-1], _SCHEDULE_AT).replace(tzinfo=UTC)
        if due > now:
            continue
        target = schedule["Target"]
        sqs.send_message(QueueUrl=queue_url_of[target["Arn"]], MessageBody=target["Input"])
        try:
            scheduler.delete_schedule(Name=name, GroupName=group)
        except scheduler.exceptions.ResourceNotFoundException:
            pass
        fired += 1
    return fired
