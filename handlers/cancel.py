"""Lambda entry point fed by the cancel queue: cancels runs whose `cancel_on` an event matches."""

from __future__ import annotations

from typing import Any

from handlers._shared import decode_event, default_services, process_batch
from infra.wiring import Services


def handler(
    event: dict[str, Any], context: Any, services: Services | None = None
) -> dict[str, Any]:
    svc = services or default_services()
    return process_batch(
        event,
        context,
        "cancel",
        lambda record: svc.router.cancel_matching(decode_event(record, svc)),
        svc,
    )
