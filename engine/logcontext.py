"""Keys that every log line carries while a run or event is handled.

The engine sets them (run_id, function_id, step_id); the logging set-up in `infra`
copies them onto each record, so the JSON log of a Lambda says which run it is about.
"""

from __future__ import annotations

from contextvars import ContextVar

log_context: ContextVar[dict[str, str]] = ContextVar("stepline_log_context", default={})  # noqa: B039


def bind(**keys: str) -> None:
    """Add keys to the current context (for the rest of this message's handling)."""
    log_context.set({**log_context.get(), **keys})
