"""Stepline's public API: what workflow authors import.

    from sdk import App, Context, Event, CancelOn, Retry, NonRetriableError, RetryAfterError, StepError
    from sdk import Batch, Concurrency, Debounce, Priority, RateLimit, Singleton, Throttle, Timeouts

This module is a facade over private modules; `tests/test_public_api.py` pins `__all__`,
so removing or renaming a name here is a deliberate, reviewed change.
"""

from sdk._app import INVOKED_EVENT, RUN_FAILED_EVENT, App, Workflow
from sdk._batch import BatchItem, BatchItemStatus, BatchResult, CompletionReason
from sdk._callback import AsyncCallback, Callback
from sdk._context import AsyncContext, AsyncStep, Context, Step
from sdk._cron import CRON_EVENT, Cron
from sdk._duration import Duration, parse_duration
from sdk._errors import (
    CallbackError,
    NonDeterminismError,
    NonRetriableError,
    RetryAfterError,
    StepError,
    StepLineError,
    WorkflowDefinitionError,
)
from sdk._event import Event
from sdk._flow import (
    Batch,
    Concurrency,
    Debounce,
    Priority,
    RateLimit,
    Singleton,
    Throttle,
    Timeouts,
)
from sdk._plugins import PluginInfo
from sdk._retry import Retry
from sdk._serdes import Serdes
from sdk._triggers import CancelOn, Trigger

__all__ = [
    "CRON_EVENT",
    "INVOKED_EVENT",
    "RUN_FAILED_EVENT",
    "App",
    "AsyncCallback",
    "AsyncContext",
    "AsyncStep",
    "Batch",
    "BatchItem",
    "BatchItemStatus",
    "BatchResult",
    "Callback",
    "CallbackError",
    "CancelOn",
    "CompletionReason",
    "Concurrency",
    "Context",
    "Cron",
    "Debounce",
    "Duration",
    "Event",
    "NonDeterminismError",
    "NonRetriableError",
    "PluginInfo",
    "Priority",
    "RateLimit",
    "Retry",
    "RetryAfterError",
    "Serdes",
    "Singleton",
    "Step",
    "StepError",
    "StepLineError",
    "Throttle",
    "Timeouts",
    "Trigger",
    "Workflow",
    "WorkflowDefinitionError",
    "parse_duration",
]
