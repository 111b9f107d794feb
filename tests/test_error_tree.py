"""One error tree: drawn in engine/errors.py, recorded types named once, non-determinism typed."""

from __future__ import annotations

import inspect
import types
from datetime import timedelta

import engine.errors as errors
import sdk._errors
from engine.errors import (
    CONTROL_FLOW,
    ErrorType,
    ItemTooLargeError,
    PermanentError,
    TransientError,
)
from infra.local import LocalRuntime
from sdk import App, Context, Event, NonDeterminismError
from tests.conftest import START


def _classes(module: types.ModuleType) -> list[type[BaseException]]:
    return [
        value
        for value in vars(module).values()
        if inspect.isclass(value)
        and issubclass(value, BaseException)
        and value.__module__ == module.__name__
    ]


def test_the_drawn_tree_names_every_error_the_engine_defines():
    drawing = errors.__doc__ or ""
    for error in _classes(errors):
        assert error.__name__ in drawing, error


def test_the_sdk_tree_names_every_user_facing_error_and_points_to_the_engines():
    drawing = sdk._errors.__doc__ or ""
    for error in _classes(sdk._errors):
        assert error.__name__ in drawing, error
    assert "engine/errors.py" in drawing


def test_the_adapter_contract_is_split_by_permanence():
    assert not issubclass(PermanentError, TransientError)
    assert not issubclass(TransientError, PermanentError)
    assert issubclass(errors.UnreachableError, TransientError)
    for permanent in (
        ItemTooLargeError,
        errors.ResourceMissingError,
        errors.TableMissing,
        errors.AccessDeniedError,
        errors.InvalidRequestError,
    ):
        assert issubclass(permanent, PermanentError), permanent
    for control in CONTROL_FLOW:
        assert not issubclass(control, Exception), control


def test_recorded_error_types_are_named_once_and_never_change():
    # Stored in step and run records and shown to users (StepError.error_type).
    assert {name: value for name, value in vars(ErrorType).items() if name.isupper()} == {
        "NON_DETERMINISM": "NonDeterminismError",
        "HISTORY_LIMIT": "HistoryLimitError",
        "ITEM_TOO_LARGE": "ItemTooLargeError",
        "INVOKE_TIMEOUT": "InvokeTimeoutError",
        "UNKNOWN_WORKFLOW": "UnknownWorkflowError",
        "FLOW_KEY": "FlowKeyError",
        "CANCELLED": "Cancelled",
        "UNKNOWN": "Error",
    }
    assert NonDeterminismError.__name__ == ErrorType.NON_DETERMINISM
    assert ItemTooLargeError.__name__ == ErrorType.ITEM_TOO_LARGE


def test_non_determinism_is_raised_as_its_sdk_type_and_catching_it_does_not_save_the_run(
    effects,
):
    # GIVEN a workflow that catches whatever its steps raise and carries on
    app = App("t")
    deployed = {"name": "send-reminder"}
    caught: list[str] = []

    @app.workflow("forgiving", trigger="go")
    def flow(ctx: Context) -> str:
        try:
            ctx.step.run(deployed["name"], lambda: effects.record("first"))
        except NonDeterminismError as error:
            caught.append(type(error).__name__)
        try:
            ctx.step.sleep("wait", "1h")
            ctx.step.run("after", lambda: effects.record("after"))
        except Exception as error:
            caught.append(type(error).__name__)
        return "carried on"

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        assert rt.run(run_id).status == "SLEEPING"
        # WHEN a deploy renames the first step while the run sleeps
        deployed["name"] = "send-nudge"
        rt.advance(timedelta(hours=1, seconds=1))
        # THEN the code met NonDeterminismError at the renamed step and again at the next
        # step call, nothing new ran, and the run failed with the recorded error
        assert caught == ["NonDeterminismError", "NonDeterminismError"]
        assert (effects["first"], effects["after"]) == (1, 0)
        run = rt.run(run_id)
        assert run.status == "FAILED"
        assert run.error.type == "NonDeterminismError"
        assert "'send-reminder'" in run.error.message
        assert "'send-nudge'" in run.error.message
