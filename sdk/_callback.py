"""A callback: an id to hand to another system, and the result it completes it with.

    cb = ctx.step.create_callback("approval", timeout="7d")
    ctx.step.run("ask", send_approval_email, cb.id)   # the other system gets the id
    decision = cb.result()                            # suspends until it is completed

`cb.id` is unguessable (it carries 128 random bits) and completes only this callback.
The other system completes it with the id alone (README, "Callbacks"): an event on the
bus, the `stepline callbacks` CLI, or `LocalRuntime.complete_callback` in tests.
`result()` returns the value it was completed with; a failure (`fail`), the timeout or a
missed heartbeat raise `StepError`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any


class Callback:
    """What `Step.create_callback` returns (sync workflows)."""

    def __init__(self, id: str, result: Callable[[], Any]) -> None:
        self.id = id
        self._result = result

    def result(self) -> Any:
        """The completion's result; suspends the run until the callback is completed."""
        return self._result()

    def __repr__(self) -> str:
        return f"Callback(id={self.id[:16]}…)"


class AsyncCallback:
    """What `AsyncStep.create_callback` returns (`async def` workflows): `await cb.result()`."""

    def __init__(self, id: str, result: Callable[[], Awaitable[Any]]) -> None:
        self.id = id
        self._result = result

    async def result(self) -> Any:
        """The completion's result; suspends the run until the callback is completed."""
        return await self._result()

    def __repr__(self) -> str:
        return f"AsyncCallback(id={self.id[:16]}…)"
