"""Lambda's side of an SQS queue: services built once per cold start, and the batch loop.

Every Lambda function of Stepline (infra/lambda_functions.py) is one call of
`process_batch`: parse each record, call the engine, and let the loop turn exceptions
into `batchItemFailures`. A record that fails goes back to its queue and, after the
queue's maxReceiveCount, to its dead-letter queue; the records behind it in the batch
carry on.

This module sits above the adapters and `infra/wiring.py`, and below `handlers/` (the
entry points Lambda names) and `infra/local/` (which plays the Lambda service).
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any, Protocol

from engine.errors import PermanentError, TransientError
from engine.logcontext import log_context
from engine.model import EPOCH
from infra.eventbridge import decode_envelope
from infra.logs import configure_lambda_logging, redact
from infra.settings import Settings
from infra.visibility import VisibilityHeartbeat
from infra.wiring import Services, build_services, load_app
from sdk import Event

log = logging.getLogger("stepline.handlers")

_services: Services | None = None


class LambdaContext(Protocol):
    """The part of Lambda's context object Stepline reads: the invocation's time budget."""

    def get_remaining_time_in_millis(self) -> int: ...


class LambdaFunction(Protocol):
    """A Stepline Lambda function: Lambda calls it with (event, context); tests and the
    local Lambda service (infra/local/) pass their own `services`."""

    def __call__(
        self,
        event: dict[str, Any],
        context: LambdaContext | None,
        services: Services | None = None,
    ) -> dict[str, Any]: ...


def default_services() -> Services:
    """Services from the environment (STEPLINE_*), created on the first invocation."""
    global _services
    if _services is None:
        configure_lambda_logging()
        settings = Settings.from_env()
        _services = build_services(load_app(settings.app), settings)
    return _services


class SQSRecord:
    """One record of a Lambda SQS event: the few fields the handlers read.

    (A plain class rather than powertools' batch utilities and data classes, which cost
    about 20 ms of every cold start to import for what is a loop and a list.)
    """

    __slots__ = ("_raw",)

    def __init__(self, raw: dict[str, Any]) -> None:
        self._raw = raw

    @property
    def message_id(self) -> str:
        return str(self._raw["messageId"])

    @property
    def body(self) -> str:
        return str(self._raw["body"])

    @property
    def approximate_receive_count(self) -> str | None:
        attributes = self._raw.get("attributes") or {}
        value = attributes.get("ApproximateReceiveCount")
        return None if value is None else str(value)

    @property
    def sent_at(self) -> datetime | None:
        """When SQS received the message (`SentTimestamp`, set by SQS: no sender can)."""
        attributes = self._raw.get("attributes") or {}
        try:
            millis = int(attributes["SentTimestamp"])
            return EPOCH + timedelta(milliseconds=millis)
        except (KeyError, TypeError, ValueError, OverflowError):
            return None


def receive_count(record: SQSRecord) -> int:
    try:
        return int(record.approximate_receive_count or 1)
    except (TypeError, ValueError):
        return 1


def process_batch(
    event: dict[str, Any],
    queue: str,
    handle: Callable[[SQSRecord], object],
    services: Services,
    *,
    group_of: Callable[[SQSRecord], str] | None = None,
) -> dict[str, Any]:
    """Run `handle` on each record; failed records are reported, not raised.

    Returns Lambda's partial batch response (`ReportBatchItemFailures`): the ids of the
    records that failed go back to the queue, the others are deleted. While the batch is
    in hand its messages' visibility is extended (infra/visibility.py), so a long step
    never has its message handed to a second consumer. A record whose handling ends in
    `SystemExit` (a step called `sys.exit()`) or a cancelled task fails alone and is
    redelivered; the records behind it are still handled.

    Records of different groups (`group_of`: the run a work message names; each event
    is a group of its own) are handled concurrently, up to `batch_concurrency` at a time,
    so nine quick runs never wait behind one long step; the records of one group are
    handled in order. Each runs in a copy of the caller's context (log keys, redaction).
    """

    def on_record(record: SQSRecord) -> None:
        token = log_context.set({"queue": queue, "message_id": record.message_id})
        try:
            handle(record)
        except ValueError as error:
            log.error(
                "%s queue: message %s is malformed and was not processed: %s. It stays on the "
                "queue and moves to the dead-letter queue after the queue's maxReceiveCount.",
                queue,
                record.message_id,
                error,
            )
            raise
        except TransientError as error:
            log.warning(
                "%s queue: message %s hit a transient AWS error and will be retried: %s",
                queue,
                record.message_id,
                error,
            )
            raise
        except PermanentError as error:
            log.error(
                "%s queue: message %s failed permanently (%s): %s. Retrying will not fix "
                "this: %s. SQS hands the message back until the queue's maxReceiveCount, "
                "then moves it to the dead-letter queue; once fixed, redrive that queue "
                "(aws sqs start-message-move-task --source-arn <the dead-letter queue's ARN>).",
                queue,
                record.message_id,
                type(error).__name__,
                error,
                error.remedy,
            )
            raise
        except Exception:
            log.exception(
                "%s queue: message %s failed; it will be retried", queue, record.message_id
            )
            raise
        finally:
            log_context.reset(token)

    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list):
        raise ValueError(f"{queue} queue: not an SQS event (no Records list): {event!r:.200}")
    failed: set[str] = set()

    def handle_group(group: list[SQSRecord]) -> None:
        for record in group:
            try:
                on_record(record)
            except Exception:
                failed.add(record.message_id)
            except BaseException as error:
                if not _ends_only_this_record(error):
                    raise
                log.error(
                    "%s queue: handling message %s ended in %s (a step called sys.exit() or "
                    "its task was cancelled); the message will be redelivered",
                    queue,
                    record.message_id,
                    type(error).__name__,
                )
                failed.add(record.message_id)

    parsed = [SQSRecord(raw) for raw in records]
    groups: dict[str, list[SQSRecord]] = {}
    for index, record in enumerate(parsed):
        key = group_of(record) if group_of is not None else f"#{index}"
        groups.setdefault(key, []).append(record)
    workers = min(len(groups), max(1, services.settings.batch_concurrency))
    with _heartbeat(records, services):
        if workers <= 1:
            for group in groups.values():
                handle_group(group)
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=queue) as pool:
                futures = [
                    pool.submit(contextvars.copy_context().run, handle_group, group)
                    for group in groups.values()
                ]
                for future in futures:
                    future.result()  # re-raises what ends the invocation (a dying process)
    return {
        "batchItemFailures": [
            {"itemIdentifier": record.message_id}
            for record in parsed
            if record.message_id in failed
        ]
    }


def run_of(record: SQSRecord) -> str:
    """The run a work message names (its group), or the message itself if unreadable."""
    try:
        run_id = json.loads(record.body).get("run_id")
    except (ValueError, AttributeError):
        run_id = None
    return run_id if isinstance(run_id, str) else f"#{record.message_id}"


def _ends_only_this_record(error: BaseException) -> bool:
    """SystemExit and a cancelled asyncio task end one record; anything else (Ctrl-C, a
    dying process) ends the invocation."""
    if isinstance(error, SystemExit):
        return True
    # Only a program that imported asyncio can raise its CancelledError: no import here.
    asyncio = sys.modules.get("asyncio")
    return asyncio is not None and isinstance(error, asyncio.CancelledError)


def _heartbeat(records: list[Any], services: Services) -> VisibilityHeartbeat:
    timeout = services.settings.visibility_timeout
    first = records[0] if records and isinstance(records[0], dict) else {}
    arn = str(first.get("eventSourceARN", ""))
    handles = [
        str(raw["receiptHandle"])
        for raw in records
        if isinstance(raw, dict) and isinstance(raw.get("receiptHandle"), str)
    ]
    return VisibilityHeartbeat(
        lambda: services.clients.sqs,
        lambda: services.queue_urls.url_of(arn),
        handles if arn else [],
        timeout_seconds=timeout,
    )


def decode_event(record: SQSRecord, services: Services) -> Event:
    """The Event in an event-queue record; its data is logged only at DEBUG, redacted.

    Its time is when SQS received it, or, for a record that does not say, now.
    """
    event = decode_envelope(record.body, received_at=record.sent_at or services.ports.clock.now())
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "event %s (%s) data: %s",
            event.id,
            event.name,
            redact(event.data, services.settings.redact_fields),
        )
    return event


def remaining_seconds(context: LambdaContext | None) -> Callable[[], float]:
    """The invocation's remaining time, from the Lambda context (or unlimited without one)."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return lambda: float("inf")
    return lambda: float(remaining()) / 1000
