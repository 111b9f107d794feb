"""Logging for handlers: powertools JSON lines carrying run_id, function_id and step_id.

The engine logs through the standard `logging` module under the "stepline" logger and
sets its keys in `engine.logcontext`; `ContextKeys` copies them onto every record so each
JSON line says which run, workflow and step it is about.

Payloads never go to the log at INFO: the engine logs ids, names and error messages.
At DEBUG, event data may be logged, with the fields named in STEPLINE_REDACT_FIELDS
masked by `redact`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from engine.logcontext import log_context

REDACTED = "***"


class ContextKeys(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in log_context.get().items():
            setattr(record, key, value)
        return True


def redact(data: Any, fields: Iterable[str]) -> Any:
    """A copy of `data` with the named keys masked at any depth."""
    names = set(fields)
    if not names:
        return data
    if isinstance(data, dict):
        return {
            key: REDACTED if key in names else redact(value, names) for key, value in data.items()
        }
    if isinstance(data, list):
        return [redact(item, names) for item in data]
    return data


_configured = False


def configure_lambda_logging() -> logging.Logger:
    """Attach a powertools JSON handler to the "stepline" logger (once per process)."""
    global _configured
    logger = logging.getLogger("stepline")
    if _configured:
        return logger
    from aws_lambda_powertools import Logger

    Logger(service="stepline")
    for handler in logger.handlers:
        handler.addFilter(ContextKeys())
    _configured = True
    return logger
