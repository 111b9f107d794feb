"""What a workflow function receives: `Context`, and through it the durable `Step` API.

`Step` and `AsyncStep` are interfaces; the engine supplies the implementation that
records each step and replays recorded ones (engine/steps.py binds each method by name to
one operation of engine/operations/, so a new method here needs one there).
`tests/test_step_api.py` pins that the two declare the same methods with the same
parameters. A sync workflow (`def`) gets a `Context`
whose steps return values; an `async def` workflow gets an `AsyncContext` whose steps are
awaited. Both behave the same way:

- `run` records the function's result once; a replay returns the recorded result (or
  re-raises its recorded failure as `StepError`) without calling the function again.
  The value returned is always the JSON form of the result, on the first run and on
  every replay alike, so the workflow sees the same value either way.
- `sleep`, `sleep_until`, `wait_for_event` and `invoke` suspend the run; no thread waits.
- `parallel` runs its branches concurrently and returns their results in argument order.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from sdk._duration import Duration
from sdk._event import Event

if TYPE_CHECKING:
    from sdk._app import Workflow

P = ParamSpec("P")
T = TypeVar("T")


class Step(abc.ABC):
    """Durable steps for a sync workflow."""

    @abc.abstractmethod
    def run(self, step_id: str, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `fn(*args, **kwargs)` once, retrying on failure; replays return the record."""

    @abc.abstractmethod
    def sleep(self, step_id: str, duration: Duration) -> None:
        """Suspend the run for `duration` (a timedelta or "30s", "24h", "7d")."""

    @abc.abstractmethod
    def sleep_until(self, step_id: str, when: datetime | str) -> None:
        """Suspend the run until `when` (an aware datetime or ISO 8601 text; naive is UTC)."""

    @abc.abstractmethod
    def wait_for_event(
        self,
        step_id: str,
        *,
        event: str,
        timeout: Duration,
        match: str | None = None,
        if_: str | None = None,
    ) -> Event | None:
        """Suspend until a matching event arrives (returned) or `timeout` passes (None)."""

    @abc.abstractmethod
    def send_event(self, step_id: str, events: Event | Sequence[Event]) -> list[str]:
        """Publish events once, even across replays; returns their ids."""

    @abc.abstractmethod
    def invoke(
        self,
        step_id: str,
        *,
        workflow: str | Workflow,
        data: dict[str, Any] | None = None,
        timeout: Duration | None = None,
    ) -> Any:
        """Start a child run of `workflow` and return its output; its failure raises StepError."""

    @abc.abstractmethod
    def parallel(self, *branches: Callable[[], T]) -> list[T]:
        """Run branches concurrently; results come back in argument order."""


class AsyncStep(abc.ABC):
    """Durable steps for an `async def` workflow: the same API, awaited."""

    @overload
    async def run(
        self, step_id: str, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T: ...

    @overload
    async def run(
        self, step_id: str, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T: ...

    @abc.abstractmethod
    async def run(self, step_id: str, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run `fn` (sync or async) once, retrying on failure; replays return the record."""

    @abc.abstractmethod
    async def sleep(self, step_id: str, duration: Duration) -> None:
        """Suspend the run for `duration`."""

    @abc.abstractmethod
    async def sleep_until(self, step_id: str, when: datetime | str) -> None:
        """Suspend the run until `when`."""

    @abc.abstractmethod
    async def wait_for_event(
        self,
        step_id: str,
        *,
        event: str,
        timeout: Duration,
        match: str | None = None,
        if_: str | None = None,
    ) -> Event | None:
        """Suspend until a matching event arrives (returned) or `timeout` passes (None)."""

    @abc.abstractmethod
    async def send_event(self, step_id: str, events: Event | Sequence[Event]) -> list[str]:
        """Publish events once, even across replays; returns their ids."""

    @abc.abstractmethod
    async def invoke(
        self,
        step_id: str,
        *,
        workflow: str | Workflow,
        data: dict[str, Any] | None = None,
        timeout: Duration | None = None,
    ) -> Any:
        """Start a child run and return its output; its failure raises StepError."""

    @abc.abstractmethod
    async def parallel(self, *branches: Callable[[], Awaitable[T]]) -> list[T]:
        """Run branches concurrently as tasks; results come back in argument order."""


class _ContextBase:
    def __init__(
        self,
        *,
        event: Event,
        run_id: str,
        workflow_id: str,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
        attempt: Callable[[], int],
        events: Sequence[Event] = (),
    ) -> None:
        self.event = event
        #: The events of a batched run (`batch_events=Batch(...)`), oldest first; `event`
        #: is the first of them. For any other run, `[event]`.
        self.events: list[Event] = list(events) or [event]
        self.run_id = run_id
        self.workflow_id = workflow_id
        self.logger = logger
        self._attempt = attempt

    @property
    def attempt(self) -> int:
        """The zero-based attempt of the step now executing (0 outside a step)."""
        return self._attempt()


class Context(_ContextBase):
    """The argument of a sync workflow: the triggering event, ids, steps and a logger.

    `logger` drops messages while the run replays recorded steps, so each line is
    written once per run rather than once per invocation.
    """

    def __init__(self, *, step: Step, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.step = step


class AsyncContext(_ContextBase):
    """The argument of an `async def` workflow; `step` methods are awaited."""

    def __init__(self, *, step: AsyncStep, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.step = step
