"""Durable timers: SQS delays for short waits, EventBridge Scheduler for long ones.

A wake-up 15 minutes away or less is an SQS message with `DelaySeconds`. A later one is
a one-time Scheduler schedule (`at(...)`, deleted after it fires) whose target is the
work queue. Either way the run receives `WorkMessage(reason="timer", at=...)`; the
engine re-arms a timer that arrives early for the remainder.

Schedule names derive from (run, wake time), so arming the same wake-up twice creates
one schedule. Delays are rounded up to whole seconds: a timer may be late by under a
second, never early.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from engine.ids import timer_name
from engine.model import WorkMessage
from engine.ports import Clock
from infra.aws_errors import aws_error, error_code
from infra.sqs import MAX_DELAY_SECONDS, encode_message

if TYPE_CHECKING:
    from mypy_boto3_scheduler import EventBridgeSchedulerClient
    from mypy_boto3_sqs import SQSClient


class SqsSchedulerTimers:
    """Implements the Timers port."""

    def __init__(
        self,
        *,
        sqs: SQSClient,
        scheduler: EventBridgeSchedulerClient,
        queue_url: str,
        queue_arn: str,
        group: str,
        role_arn: str,
        clock: Clock,
    ) -> None:
        self._sqs = sqs
        self._scheduler = scheduler
        self._queue_url = queue_url
        self._queue_arn = queue_arn
        self._group = group
        self._role_arn = role_arn
        self._clock = clock

    def arm(self, run_id: str, at: datetime) -> None:
        body = encode_message(WorkMessage(run_id=run_id, reason="timer", at=at))
        delay = math.ceil((at - self._clock.now()).total_seconds())
        if delay <= MAX_DELAY_SECONDS:
            try:
                self._sqs.send_message(
                    QueueUrl=self._queue_url, MessageBody=body, DelaySeconds=max(0, delay)
                )
            except (ClientError, BotoCoreError) as error:
                raise aws_error(
                    error, service="SQS", resource=f"work queue {self._queue_url}"
                ) from None
            return
        fire_at = _ceil_second(at)
        try:
            self._scheduler.create_schedule(
                Name=timer_name(run_id, int(fire_at.timestamp())),
                GroupName=self._group,
                ScheduleExpression=f"at({fire_at:%Y-%m-%dT%H:%M:%S})",
                ScheduleExpressionTimezone="UTC",
                FlexibleTimeWindow={"Mode": "OFF"},
                ActionAfterCompletion="DELETE",
                Target={"Arn": self._queue_arn, "RoleArn": self._role_arn, "Input": body},
            )
        except (ClientError, BotoCoreError) as error:
            if isinstance(error, ClientError) and error_code(error) == "ConflictException":
                return  # already armed
            raise aws_error(
                error,
                service="EventBridge Scheduler",
                resource=f"schedule group {self._group!r} (arming a timer for run {run_id})",
            ) from None

    def disarm(self, run_id: str, at: datetime) -> None:
        if (at - self._clock.now()).total_seconds() <= MAX_DELAY_SECONDS:
            return  # an SQS delay cannot be withdrawn; the engine ignores it when it lands
        name = timer_name(run_id, int(_ceil_second(at).timestamp()))
        try:
            self._scheduler.delete_schedule(Name=name, GroupName=self._group)
        except (ClientError, BotoCoreError):
            pass  # best effort: a stale timer is dropped by the engine


def _ceil_second(instant: datetime) -> datetime:
    instant = instant.astimezone(UTC)
    if instant.microsecond:
        instant = instant.replace(microsecond=0) + timedelta(seconds=1)
    return instant
