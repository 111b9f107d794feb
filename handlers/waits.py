"""Lambda entry point fed by the waits queue: resolves `wait_for_event` steps an event matches."""

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
        "waits",
        lambda record: svc.router.resolve_waits(decode_event(record, svc)),
        svc,
    )
