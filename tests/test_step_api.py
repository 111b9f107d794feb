"""The step API is declared once per kind of workflow and implemented once.

`sdk.Step` and `sdk.AsyncStep` are the typed public surfaces; the engine binds each of
their methods by name to one operation of `engine.operations.OPERATIONS`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from engine.operations import OPERATIONS
from engine.steps import AsyncSteps, SyncSteps
from sdk import AsyncStep, Step


def _parameters(method: Callable[..., object]) -> list[tuple[str, object, object]]:
    """Name, kind and default of each parameter: what a caller can pass."""
    return [
        (parameter.name, parameter.kind, parameter.default)
        for parameter in inspect.signature(method).parameters.values()
    ]


def test_step_and_async_step_declare_the_same_methods_with_the_same_parameters():
    assert Step.__abstractmethods__ == AsyncStep.__abstractmethods__
    for name in sorted(Step.__abstractmethods__):
        assert _parameters(getattr(Step, name)) == _parameters(getattr(AsyncStep, name)), name


def test_async_step_methods_are_awaited_and_step_methods_are_not():
    for name in Step.__abstractmethods__:
        assert not inspect.iscoroutinefunction(getattr(Step, name)), name
        assert inspect.iscoroutinefunction(getattr(AsyncStep, name)), name


def test_every_declared_method_is_one_registered_operation_and_nothing_else_is():
    assert set(OPERATIONS) == set(Step.__abstractmethods__)


def test_the_engine_binds_each_method_to_its_operation_with_the_sdk_signature():
    for surface, bound in ((Step, SyncSteps), (AsyncStep, AsyncSteps)):
        assert isinstance(bound, type) and issubclass(bound, surface)
        assert not getattr(bound, "__abstractmethods__", None)
        for name in OPERATIONS:
            method = getattr(bound, name)
            assert inspect.signature(method) == inspect.signature(getattr(surface, name)), name
            assert inspect.iscoroutinefunction(method) is (surface is AsyncStep), name


def test_each_operation_takes_the_session_and_then_the_declared_parameters():
    for name, operation in OPERATIONS.items():
        assert inspect.iscoroutinefunction(operation), name
        session, *rest = _parameters(operation)
        assert session[0] == "session", name
        assert rest == _parameters(getattr(Step, name))[1:], name
