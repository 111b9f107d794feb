"""Logging for handlers: powertools JSON lines carrying run_id, function_id and step_id.

The engine logs through the standard `logging` module under the "stepline" logger and
sets its keys in `engine.logcontext`; `ContextKeys` copies them onto every record so each
JSON line says which run, workflow and step it is about.

Payloads never go to the log at INFO: the engine logs ids, names and error messages.
At DEBUG, event data may be logged, with the fields named in STEPLINE_REDACT_FIELDS
masked by `redact`.

Every handler Stepline installs (the Lambda functions' JSON handler here, the console
handler of `stepline dev` and `stepline worker`) also has a `Redact` filter. It renders
each record (message with its arguments, exception text with its traceback, stack),
replaces the values of redacted fields that the message being handled brought in with
`***` (see `engine.logcontext`), and caps what is left: a message at
`MAX_MESSAGE_CHARS`, an exception text at `MAX_EXCEPTION_CHARS`, each cut marked with
"… N more characters". A workflow's `ctx.logger` goes through the same handlers.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Iterable, Mapping
from typing import IO, Any

from engine.logcontext import REDACTED, Secrets, carried_secrets, current_secrets, log_context

__all__ = [
    "MAX_EXCEPTION_CHARS",
    "MAX_MESSAGE_CHARS",
    "REDACTED",
    "ContextKeys",
    "Redact",
    "configure_lambda_logging",
    "quiet_expression_library",
    "redact",
]

#: A logged message is cut after this many characters.
MAX_MESSAGE_CHARS = 4_000
#: An exception's text (traceback and message) keeps this many: its start and its end.
MAX_EXCEPTION_CHARS = 8_000


class ContextKeys(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in log_context.get().items():
            setattr(record, key, value)
        return True


# Attributes every LogRecord has; the others are a caller's `extra=` keys.
_STANDARD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "exception",
    "exception_name",
}


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… {len(text) - limit:,} more characters"


def _cut_middle(text: str, limit: int) -> str:
    """Keeps both ends: a traceback's frames open it and its exception's type closes it."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n… {len(text) - 2 * half:,} more characters …\n{text[-half:]}"


class _Masks:
    """The secrets to mask in one record: the current message's, and those carried by the
    exceptions it reports (raised inside a scope that has ended since)."""

    def __init__(self, secrets: list[Secrets]) -> None:
        self.secrets = secrets

    def scrub(self, text: str) -> str:
        for secrets in self.secrets:
            text = secrets.scrub(text)
        return text


def _masks(record: logging.LogRecord) -> _Masks | None:
    found = []
    current = current_secrets()
    if current is not None:
        found.append(current)
    errors = [record.exc_info[1]] if record.exc_info else []
    args = record.args
    values = args.values() if isinstance(args, Mapping) else args or ()
    errors += [value for value in values if isinstance(value, BaseException)]
    for error in errors:
        if error is not None:
            found += [s for s in carried_secrets(error) if s and s not in found]
    return _Masks(found) if found else None


class Redact(logging.Filter):
    """Masks the current message's secrets in a record, and caps its length (see above).

    It changes the record itself, so the handlers that see it after this one (the root
    logger's, in Lambda) get the masked text too. Cheap when there is nothing to do: a
    short message with no arguments and no exception, in a message that brought in no
    secrets, is left as it is.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.msg
        if (
            not record.args
            and isinstance(message, str)
            and len(message) <= MAX_MESSAGE_CHARS
            and not record.exc_info
            and not record.stack_info
            and current_secrets() is None
        ):
            return True
        masks = _masks(record)
        self._message(record, masks)
        if record.exc_info:
            self._exception(record, masks)
        if record.stack_info:
            record.stack_info = _cut_middle(_scrub(record.stack_info, masks), MAX_EXCEPTION_CHARS)
        if masks is not None:
            self._extras(record, masks)
        return True

    @staticmethod
    def _message(record: logging.LogRecord, masks: _Masks | None) -> None:
        try:
            text = record.getMessage()
        except Exception as error:
            text = f"{record.msg!s} (its arguments could not be formatted: {type(error).__name__})"
        masked = _cut(_scrub(text, masks), MAX_MESSAGE_CHARS)
        if record.args or masked != text:
            record.msg = masked
            record.args = None

    @staticmethod
    def _exception(record: logging.LogRecord, masks: _Masks | None) -> None:
        assert record.exc_info
        kind = record.exc_info[0]
        text = record.exc_text or "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        text = _cut_middle(_scrub(text, masks), MAX_EXCEPTION_CHARS)
        # Formatters render exc_info afresh (powertools' JSON one even serialises the
        # exception object): give them only the masked text. The standard formatter
        # prints exc_text; powertools prints the `exception` and `exception_name` keys.
        record.exc_info = None
        record.exc_text = text
        record.exception = text
        record.exception_name = kind.__name__ if kind is not None else "Exception"

    @staticmethod
    def _extras(record: logging.LogRecord, masks: _Masks) -> None:
        for key, value in list(record.__dict__.items()):
            if key in _STANDARD_ATTRIBUTES or value is None or isinstance(value, int | float):
                continue
            text = value if isinstance(value, str) else str(value)
            masked = masks.scrub(text)
            if masked != text:
                setattr(record, key, masked)


def _scrub(text: str, masks: _Masks | None) -> str:
    return masks.scrub(text) if masks is not None else text


def quiet_expression_library() -> None:
    """cel-python logs the values it evaluates (whole events at DEBUG, function arguments
    at ERROR) under "celpy"; Stepline reports expression errors itself, without values."""
    logging.getLogger("celpy").setLevel(logging.CRITICAL)


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


class _LambdaHandler(logging.StreamHandler[IO[str]]):
    """The JSON handler `configure_lambda_logging` attaches (told apart from others)."""


# powertools configures a logger once per process and ignores a second handler.
_powertools_configured = False


def configure_lambda_logging(stream: IO[str] | None = None) -> logging.Logger:
    """Attach a powertools JSON handler to the "stepline" logger (once per process).

    Level: POWERTOOLS_LOG_LEVEL (or LOG_LEVEL), INFO by default. `stream` is for tests.
    """
    global _powertools_configured
    logger = logging.getLogger("stepline")
    if stream is None and any(isinstance(h, _LambdaHandler) for h in logger.handlers):
        return logger
    from aws_lambda_powertools import Logger

    handler = _LambdaHandler(stream or sys.stdout)
    handler.addFilter(ContextKeys())
    handler.addFilter(Redact())
    if _powertools_configured:
        # Tests that pass a stream each time attach theirs directly.
        from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

        handler.setFormatter(LambdaPowertoolsFormatter(service="stepline"))
        logger.addHandler(handler)
        level = os.environ.get("POWERTOOLS_LOG_LEVEL") or os.environ.get("LOG_LEVEL") or "INFO"
        logger.setLevel(level.upper())
    else:
        Logger(service="stepline", logger_handler=handler)
        _powertools_configured = True
    quiet_expression_library()
    return logger
