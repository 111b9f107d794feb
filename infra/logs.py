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
import sys
from collections.abc import Iterable
from typing import IO, Any

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


def configure_lambda_logging(stream: IO[str] | None = None) -> logging.Logger:
    """Attach a powertools JSON handler to the "stepline" logger (once per process).

    Level: POWERTOOLS_LOG_LEVEL (or LOG_LEVEL), INFO by default. `stream` is for tests.
    """
    logger = logging.getLogger("stepline")
    if stream is None and any(getattr(h, "stepline", False) for h in logger.handlers):
        return logger
    from aws_lambda_powertools import Logger

    handler = logging.StreamHandler(stream or sys.stdout)
    handler.stepline = True  # type: ignore[attr-defined]
    handler.addFilter(ContextKeys())
    Logger(service="stepline", logger_handler=handler)
    return logger
