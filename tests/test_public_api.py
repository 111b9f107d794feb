"""The public API is a contract: its names change only on purpose."""

import sdk

EXPECTED = {
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
}


def test_sdk_exports_exactly_the_pinned_names():
    assert set(sdk.__all__) == EXPECTED
    for name in EXPECTED:
        assert hasattr(sdk, name), name


def test_the_design_contract_imports_work():
    from infra.local import LocalRuntime  # noqa: F401
    from sdk import (  # noqa: F401
        App,
        CancelOn,
        Context,
        Event,
        NonRetriableError,
        Retry,
        RetryAfterError,
        StepError,
    )


def test_step_control_errors_cannot_be_caught_by_except_exception():
    from engine.errors import FailRun, Superseded, SuspendRun

    for control in (SuspendRun, FailRun, Superseded):
        assert not issubclass(control, Exception)
