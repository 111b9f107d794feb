"""Keeping received SQS messages invisible while their handler works on them.

SQS hands a message to one consumer for its visibility timeout, then to another. A
handler that works longer than that (a 45-second step under a worker's 30-second
timeout) would see its message handed to a second worker while it still works: the
second would find the run leased and leave it, but the work would be paid twice and a
redelivery would count against the queue's maxReceiveCount. So while a batch is in
hand, `VisibilityHeartbeat` extends the visibility of its messages every third of the
timeout, from a thread of its own. A holder that dies stops extending, and its messages
come back one timeout later: that is how a crashed holder's work is picked up.

On Lambda the queues' timeouts are six times the functions' timeouts (template.yaml,
pinned by tests/test_template.py), so an invocation never outlives its messages and the
heartbeat never needs to fire there; `stepline worker` (`--visibility-timeout`) and
`stepline dev` rely on it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Self

from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger("stepline.sqs")

# SQS's own cap on a message's visibility timeout.
MAX_VISIBILITY_SECONDS = 12 * 60 * 60


class VisibilityHeartbeat:
    """While open, extends the visibility of `receipt_handles` on one queue."""

    def __init__(
        self,
        sqs: Callable[[], SQSClient],
        queue_url: Callable[[], str],
        receipt_handles: Sequence[str],
        *,
        timeout_seconds: int,
    ) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._handles = list(receipt_handles)
        self._timeout = min(int(timeout_seconds), MAX_VISIBILITY_SECONDS)
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        #: How many times the visibility was extended (for tests and logs).
        self.extensions = 0

    def __enter__(self) -> Self:
        if self._timeout > 0 and self._handles:
            self._thread = threading.Thread(
                target=self._beat, name="stepline-visibility", daemon=True
            )
            self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()

    def _beat(self) -> None:
        while not self._stopped.wait(self._timeout / 3):
            try:
                self._extend()
            except (ClientError, BotoCoreError) as error:
                # The next beat tries again; a lost message only means a redelivery,
                # which the engine's lease keeps from running beside us.
                log.warning(
                    "could not extend the visibility of %d message(s): %s",
                    len(self._handles),
                    error,
                )

    def _extend(self) -> None:
        url = self._queue_url()
        for start in range(0, len(self._handles), 10):
            chunk = self._handles[start : start + 10]
            self._sqs().change_message_visibility_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(index), "ReceiptHandle": handle, "VisibilityTimeout": self._timeout}
                    for index, handle in enumerate(chunk)
                ],
            )
        self.extensions += 1


class QueueUrls:
    """Queue URLs by ARN, for heartbeats: known ones (the worker's queues, the work queue
    of the settings), AWS's standard form on AWS, else looked up once (GetQueueUrl) on an
    endpoint such as moto's, whose URLs differ."""

    def __init__(
        self,
        sqs: Callable[[], SQSClient],
        *,
        endpoint: str | None = None,
        known: dict[str, str] | None = None,
    ) -> None:
        self._sqs = sqs
        self._endpoint = endpoint
        self._urls = dict(known or {})
        self._lock = threading.Lock()

    def add(self, arn: str, url: str) -> None:
        with self._lock:
            self._urls[arn] = url

    def url_of(self, arn: str) -> str:
        with self._lock:
            url = self._urls.get(arn)
        if url is None:
            # arn:<partition>:sqs:<region>:<account>:<name>
            _, partition, _, region, account, name = arn.split(":", 5)
            if self._endpoint is None:
                suffix = "amazonaws.com.cn" if partition == "aws-cn" else "amazonaws.com"
                url = f"https://sqs.{region}.{suffix}/{account}/{name}"
            else:
                reply = self._sqs().get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)
                url = str(reply["QueueUrl"])
            self.add(arn, url)
        return url
