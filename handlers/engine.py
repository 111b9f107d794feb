"""Lambda entry point of the engine, fed by the work queue: advances the run each message names."""

from __future__ import annotations

from typing import Any

from engine.model import Delivery, WorkMessage
from handlers._shared import default_services, process_batch, receive_count, remaining_seconds
from infra.wiring import Services


def handler(
    event: dict[str, Any], context: Any, services: Services | None = None
) -> dict[str, Any]:
    svc = services or default_services()
    time_left = remaining_seconds(context)

    def handle(record: Any) -> None:
        message = WorkMessage.model_validate_json(record.body)
        delivery = Delivery(message_id=record.message_id, receive_count=receive_count(record))
        svc.runner.handle(message, delivery, time_left)

    return process_batch(event, context, "work", handle, svc)
