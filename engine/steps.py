"""`ctx.step`: the implementations of `sdk.Step` and `sdk.AsyncStep`, bound from one registry.

The SDK declares the step API twice, as the typed public surfaces for sync and `async
def` workflows. The engine implements it once: each method is bound by name to the
operation of the same name in `engine.operations.OPERATIONS`, and only the driver
differs (`drive_sync` returns the value; `drive_async` is awaited and keeps port calls
off the event loop; see engine/driver.py). A method the SDK declares without an
operation, or an operation the SDK does not declare, fails at import.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from engine.driver import Operation, drive_async, drive_sync
from engine.operations import OPERATIONS
from engine.session import Session
from sdk import AsyncStep, Step


def _bind(surface: type, name: str, operation: Callable[..., Operation[Any]]) -> Callable[..., Any]:
    if surface is AsyncStep:

        async def method(self: _Bound, /, *args: Any, **kwargs: Any) -> Any:
            return await drive_async(operation(self._session, *args, **kwargs))

    else:

        def method(self: _Bound, /, *args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
            return drive_sync(operation(self._session, *args, **kwargs))

    declared = getattr(surface, name)
    method.__name__ = name
    method.__qualname__ = f"{surface.__name__}.{name}"
    method.__doc__ = declared.__doc__
    method.__wrapped__ = declared  # type: ignore[attr-defined]  # inspect.signature shows the SDK's
    return method


class _Bound:
    def __init__(self, session: Session) -> None:
        self._session = session


def _implement(surface: type) -> type:
    declared = set(surface.__abstractmethods__)  # type: ignore[attr-defined]
    if declared != set(OPERATIONS):
        raise TypeError(
            f"sdk.{surface.__name__} declares {sorted(declared)} but engine.operations "
            f"implements {sorted(OPERATIONS)}: declare and register each operation once"
        )
    methods = {name: _bind(surface, name, operation) for name, operation in OPERATIONS.items()}
    return type(f"Engine{surface.__name__}", (_Bound, surface), methods)


SyncSteps = cast(Callable[[Session], Step], _implement(Step))
AsyncSteps = cast(Callable[[Session], AsyncStep], _implement(AsyncStep))
