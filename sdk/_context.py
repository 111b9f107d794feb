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
- `parallel` runs its branches concurrently and returns their results in argument order;
  `map` runs a function over items the same way. With a completion option either returns
  a `BatchResult` (sdk/_batch.py).
- `child` runs a function of steps as one recorded operation; `create_callback` and
  `wait_for_callback` wait for another system to complete an id (sdk/_callback.py);
  `wait_for_condition` polls durably until a condition holds.

Step options (`run`'s `retries`, `at_most_once`, `serdes`, `timeout`) are keyword
arguments of the call and are never passed to `fn`. A serdes is sdk/_serdes.py's.

`ctx.patched("change-id")` (and `ctx.deprecate_patch`) version a workflow's code while
runs are in flight: recorded like a step, called without `await` in both kinds of
workflow (engine/operations/patched.py says how it decides). `ctx.continue_as_new(data)`
ends the run and starts a fresh one with an empty history.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, TypeVar

from sdk._duration import Duration
from sdk._event import Event

if TYPE_CHECKING:
    from sdk._app import Workflow
    from sdk._callback import AsyncCallback, Callback
    from sdk._retry import Retry
    from sdk._serdes import Serdes

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741
S = TypeVar("S")

#: A parallel branch: a callable, or a (name, callable) pair.
Branch = Callable[[], Any] | tuple[str, Callable[[], Any]]


class Step(abc.ABC):
    """Durable steps for a sync workflow."""

    @abc.abstractmethod
    def run(
        self,
        step_id: str,
        fn: Callable[..., T],
        /,
        *args: Any,
        retries: Retry | None = None,
        at_most_once: bool = False,
        serdes: Serdes | None = None,
        timeout: Duration | None = None,
        **kwargs: Any,
    ) -> T:
        """Run `fn(*args, **kwargs)` once, retrying on failure; replays return the record.

        `retries` replaces the workflow's policy for this step. `at_most_once`: an attempt
        cut off before its outcome was recorded is not run again but fails (and the retry
        policy decides). `timeout`: an attempt still running after it fails (the function
        cannot be killed: it keeps running in its thread, and what it returns is
        discarded). `serdes` stores the result as its text.
        """

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
        data: Any = None,
        timeout: Duration | None = None,
        payload_serdes: Serdes | None = None,
        result_serdes: Serdes | None = None,
        tenant_id: str | None = None,
    ) -> Any:
        """Start a child run of `workflow` and return its output; its failure raises StepError.

        With `payload_serdes`, `data` may be any value: the child's `ctx.event.data` is
        `{"payload": payload_serdes.serialize(data)}`. With `result_serdes`, the child's
        output (the text it returned, or its JSON) is `result_serdes.deserialize`d.
        `tenant_id` is recorded on the child run.
        """

    @abc.abstractmethod
    def parallel(
        self,
        *branches: Branch,
        max_concurrency: int | None = None,
        min_successful: int | None = None,
        tolerated_failure_count: int | None = None,
        tolerated_failure_percentage: float | None = None,
        item_namer: Callable[[Any, int], str] | None = None,
        serdes: Serdes | None = None,
        item_serdes: Serdes | None = None,
    ) -> Any:
        """Run branches concurrently; results come back in argument order (a list).

        With a completion option (`min_successful`, `tolerated_failure_*`) it returns a
        `BatchResult` instead of raising on a failure.
        """

    @abc.abstractmethod
    def map(
        self,
        step_id: str,
        items: Iterable[I],
        fn: Callable[[I, int], Any],
        *,
        max_concurrency: int | None = None,
        min_successful: int | None = None,
        tolerated_failure_count: int | None = None,
        tolerated_failure_percentage: float | None = None,
        item_namer: Callable[[I, int], str] | None = None,
        serdes: Serdes | None = None,
        item_serdes: Serdes | None = None,
    ) -> Any:
        """Call `fn(item, index)` for each item, concurrently; results in item order.

        Each call is a scope of its own: the steps it calls are recorded under it, and its
        result is recorded once, so a replay does not call it again. Without a completion
        option the results come back as a list and a failure raises StepError; with one, a
        `BatchResult`.
        """

    @abc.abstractmethod
    def child(self, step_id: str, fn: Callable[[], T], *, serdes: Serdes | None = None) -> T:
        """Run `fn()`, whose steps are scoped to it, as one operation recorded once."""

    @abc.abstractmethod
    def create_callback(
        self,
        step_id: str,
        *,
        timeout: Duration | None = None,
        heartbeat_timeout: Duration | None = None,
        serdes: Serdes | None = None,
    ) -> Callback:
        """Create a callback: `cb.id` for another system, `cb.result()` waits for it."""

    @abc.abstractmethod
    def wait_for_callback(
        self,
        step_id: str,
        submitter: Callable[[str], Any],
        *,
        timeout: Duration | None = None,
        heartbeat_timeout: Duration | None = None,
        serdes: Serdes | None = None,
    ) -> Any:
        """Run `submitter(callback_id)` as a step, then wait for the callback's result."""

    @abc.abstractmethod
    def wait_for_condition(
        self,
        step_id: str,
        check: Callable[[S], S],
        *,
        initial_state: S | None = None,
        until: Callable[[S], bool],
        interval: Duration | None = None,
        max_attempts: int | None = None,
        serdes: Serdes | None = None,
    ) -> S:
        """Poll: `state = check(state)` until `until(state)`, sleeping `interval` between."""


class AsyncStep(abc.ABC):
    """Durable steps for an `async def` workflow: the same API, awaited."""

    @abc.abstractmethod
    async def run(
        self,
        step_id: str,
        fn: Callable[..., Any],
        /,
        *args: Any,
        retries: Retry | None = None,
        at_most_once: bool = False,
        serdes: Serdes | None = None,
        timeout: Duration | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run `fn` (sync or async) once, retrying on failure; replays return the record.

        The options are `Step.run`'s. With `timeout`, an async `fn` is cancelled when the
        attempt times out; a sync one runs in a thread and keeps running.
        """

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
        data: Any = None,
        timeout: Duration | None = None,
        payload_serdes: Serdes | None = None,
        result_serdes: Serdes | None = None,
        tenant_id: str | None = None,
    ) -> Any:
        """Start a child run and return its output; its failure raises StepError."""

    @abc.abstractmethod
    async def parallel(
        self,
        *branches: Branch,
        max_concurrency: int | None = None,
        min_successful: int | None = None,
        tolerated_failure_count: int | None = None,
        tolerated_failure_percentage: float | None = None,
        item_namer: Callable[[Any, int], str] | None = None,
        serdes: Serdes | None = None,
        item_serdes: Serdes | None = None,
    ) -> Any:
        """Run branches concurrently as tasks; results come back in argument order."""

    @abc.abstractmethod
    async def map(
        self,
        step_id: str,
        items: Iterable[I],
        fn: Callable[[I, int], Any],
        *,
        max_concurrency: int | None = None,
        min_successful: int | None = None,
        tolerated_failure_count: int | None = None,
        tolerated_failure_percentage: float | None = None,
        item_namer: Callable[[I, int], str] | None = None,
        serdes: Serdes | None = None,
        item_serdes: Serdes | None = None,
    ) -> Any:
        """Call `fn(item, index)` (sync or async) for each item as tasks; see `Step.map`."""

    @abc.abstractmethod
    async def child(
        self, step_id: str, fn: Callable[[], Any], *, serdes: Serdes | None = None
    ) -> Any:
        """Run `fn()` (sync or async), whose steps are scoped to it, recorded once."""

    @abc.abstractmethod
    async def create_callback(
        self,
        step_id: str,
        *,
        timeout: Duration | None = None,
        heartbeat_timeout: Duration | None = None,
        serdes: Serdes | None = None,
    ) -> AsyncCallback:
        """Create a callback: `cb.id` for another system, `await cb.result()` waits for it."""

    @abc.abstractmethod
    async def wait_for_callback(
        self,
        step_id: str,
        submitter: Callable[[str], Any],
        *,
        timeout: Duration | None = None,
        heartbeat_timeout: Duration | None = None,
        serdes: Serdes | None = None,
    ) -> Any:
        """Run `submitter(callback_id)` as a step, then wait for the callback's result."""

    @abc.abstractmethod
    async def wait_for_condition(
        self,
        step_id: str,
        check: Callable[[Any], Any],
        *,
        initial_state: Any = None,
        until: Callable[[Any], Any],
        interval: Duration | None = None,
        max_attempts: int | None = None,
        serdes: Serdes | None = None,
    ) -> Any:
        """Poll durably until `until(state)`; `check` and `until` may be async."""


class Patches(Protocol):
    """What the engine supplies behind `ctx.patched` and `ctx.deprecate_patch`."""

    def patched(self, change_id: str) -> bool: ...

    def deprecate_patch(self, change_id: str) -> None: ...


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
        continue_as_new: Callable[[dict[str, Any]], NoReturn] | None = None,
        patches: Patches | None = None,
    ) -> None:
        self.event = event
        #: The events of a batched run (`batch_events=Batch(...)`), oldest first; `event`
        #: is the first of them. For any other run, `[event]`.
        self.events: list[Event] = list(events) or [event]
        self.run_id = run_id
        self.workflow_id = workflow_id
        self.logger = logger
        self._attempt = attempt
        self._continue_as_new = continue_as_new
        self._patches = patches

    @property
    def attempt(self) -> int:
        """The zero-based attempt of the step now executing (0 outside a step)."""
        return self._attempt()

    def continue_as_new(self, data: dict[str, Any] | None = None) -> NoReturn:
        """End this run and start a fresh run of the same workflow, with an empty history,
        whose `ctx.event.data` is `data` (a JSON object).

        For work that goes on and on (a poller, a drip that never ends, a loop over pages):
        each resume loads and replays a run's whole history, so carry the state forward in
        `data` instead of letting the history grow. The run ends COMPLETED, naming its
        continuation; a parent waiting on it (`step.invoke`) gets the last run's output.
        """
        if self._continue_as_new is None:
            raise RuntimeError("continue_as_new works only inside a running workflow")
        self._continue_as_new(dict(data or {}))

    def patched(self, change_id: str) -> bool:
        """True where this run takes the code of change `change_id`; False in a run
        recorded before the change, which replays the old path. Recorded like a step.

        Add `if ctx.patched("id"): new code else: old code`, deploy, wait for the runs
        started before to finish, then drop the old branch (see `deprecate_patch`).
        """
        return self._engine_patches().patched(change_id)

    def deprecate_patch(self, change_id: str) -> None:
        """Where `ctx.patched(change_id)` stood once its old branch is gone: runs that
        recorded the change replay past its marker; new runs record nothing."""
        self._engine_patches().deprecate_patch(change_id)

    def _engine_patches(self) -> Patches:
        if self._patches is None:
            raise RuntimeError("ctx.patched works only in a run the engine executes")
        return self._patches


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
