"""What every handler shares: services built once per cold start, and SQS batch plumbing.

Each handler is a thin function: parse the record, call the engine, let the batch
processor turn exceptions into `batchItemFailures`. A record that fails goes back to its
queue and, after the queue's maxReceiveCount, to its dead-letter queue; the records
behind it in the batch carry on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from engine.logcontext import log_context
from engine.ports import TransientError
from infra.eventbridge import decode_envelope
from infra.logs import configure_lambda_logging, redact
from infra.settings import Settings
from infra.wiring import Services, build_services, load_app

log = logging.getLogger("stepline.handlers")

_services: Services | None = None


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


def receive_count(record: SQSRecord) -> int:
    try:
        return int(record.approximate_receive_count or 1)
    except (TypeError, ValueError):
        return 1


def process_batch(
    event: dict[str, Any],
    context: Any,
    queue: str,
    handle: Callable[[SQSRecord], None],
) -> dict[str, Any]:
    """Run `handle` on each record; failed records are reported, not raised.

    Returns Lambda's partial batch response (`ReportBatchItemFailures`): the ids of the
    records that failed go back to the queue, the others are deleted.
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
    failures = []
    for raw in records:
        record = SQSRecord(raw)
        try:
            on_record(record)
        except Exception:
            failures.append({"itemIdentifier": record.message_id})
    return {"batchItemFailures": failures}


def decode_event(body: str, services: Services) -> Any:
    """The Event in an event-queue record; its data is logged only at DEBUG, redacted."""
    event = decode_envelope(body)
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "event %s (%s) data: %s",
            event.id,
            event.name,
            redact(event.data, services.settings.redact_fields),
        )
    return event


def remaining_seconds(context: Any) -> Callable[[], float]:
    """The invocation's remaining time, from the Lambda context (or unlimited without one)."""
    if context is None or not hasattr(context, "get_remaining_time_in_millis"):
        return lambda: float("inf")
    return lambda: context.get_remaining_time_in_millis() / 1000
