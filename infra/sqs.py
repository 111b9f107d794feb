"""SQS adapter for the engine's work queue, and the SQS half of the timers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from engine.model import WorkMessage
from infra.aws_errors import aws_error

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

# SQS holds a message back for at most 15 minutes.
MAX_DELAY_SECONDS = 900
# AWS's limit (moto allows 1 MiB); our messages are tiny, but say so if one is not.
MAX_MESSAGE_BYTES = 256 * 1024


def encode_message(message: WorkMessage) -> str:
    body = message.model_dump_json(exclude_none=True)
    if len(body.encode()) > MAX_MESSAGE_BYTES:
        raise ValueError(f"work message for run {message.run_id} is over SQS's 256 KiB limit")
    return body


class SqsWorkQueue:
    """Implements the WorkQueue port."""

    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self._client = client
        self._url = queue_url

    def enqueue(self, message: WorkMessage, *, delay_seconds: int = 0) -> None:
        delay = max(0, min(int(delay_seconds), MAX_DELAY_SECONDS))
        try:
            self._client.send_message(
                QueueUrl=self._url, MessageBody=encode_message(message), DelaySeconds=delay
            )
        except (ClientError, BotoCoreError) as error:
            raise aws_error(error, service="SQS", resource=f"work queue {self._url}") from None
