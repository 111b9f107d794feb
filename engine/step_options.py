"""The options of `step.run`: `retries`, `at_most_once`, `serdes`, `timeout`.

They are keyword arguments of the step call, never passed to the function. `StepOptions.of`
validates them and returns None when all are left at their defaults, so a plain step
pays nothing for them (engine/operations/run.py).

- `retries`: the step's own `Retry` policy instead of the workflow's.
- `at_most_once`: before each attempt runs, a STARTED record is written (one more
  conditional put per attempt). A replay that finds it finds an attempt that was cut off
  before its outcome was recorded: that attempt is not run again but fails
  (`AttemptInterruptedError`), and the retry policy decides.
- `serdes`: the result is stored as `serialize(value)` and returned as
  `deserialize(text)` (engine/values.py).
- `timeout`: an attempt still running after it fails with `StepTimeoutError` (the
  function is abandoned, see engine/deadline.py). The attempt is also held to the
  invocation's remaining time less `suspend_margin`: a step that would outlive the
  Lambda fails its attempt instead of being killed unrecorded; and an invocation that
  has already run steps and cannot give the attempt its whole timeout continues in a
  fresh one first.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from engine.deadline import Deadline
from engine.values import from_record
from sdk import Retry, Serdes, WorkflowDefinitionError
from sdk._duration import Duration, parse_duration
from sdk._serdes import check_serdes

if TYPE_CHECKING:
    from engine.session import Session


@dataclass(frozen=True)
class StepOptions:
    retries: Retry | None = None
    at_most_once: bool = False
    serdes: Serdes | None = None
    timeout: timedelta | None = None
    # Whether the step's function is a coroutine function (a timed attempt is then a
    # task, cancelled at the limit, rather than a thread).
    is_async: bool = False

    @classmethod
    def of(
        cls,
        what: str,
        fn: Callable[..., Any],
        *,
        retries: Retry | None,
        at_most_once: bool,
        serdes: Serdes | None,
        timeout: Duration | None,
    ) -> StepOptions | None:
        if retries is None and not at_most_once and serdes is None and timeout is None:
            return None
        if retries is not None and not isinstance(retries, Retry):
            raise WorkflowDefinitionError(f"{what}: retries must be a Retry(...)")
        if not isinstance(at_most_once, bool):
            raise WorkflowDefinitionError(f"{what}: at_most_once must be True or False")
        limit = None
        if timeout is not None:
            limit = parse_duration(timeout, what=f"{what} timeout")
            if limit <= timedelta(0):
                raise WorkflowDefinitionError(f"{what}: timeout must be longer than zero")
        return cls(
            retries=retries,
            at_most_once=at_most_once,
            serdes=check_serdes(serdes, what=what),
            timeout=limit,
            is_async=inspect.iscoroutinefunction(fn),
        )

    def load(self, stored: Any) -> Any:
        return from_record(stored, self.serdes)

    def deadline(self, session: Session) -> Deadline | None:
        """The limit of the attempt about to run: its timeout, within the invocation's time."""
        if self.timeout is None:
            return None
        remaining = session.remaining_time()
        room = max(remaining - session.settings.suspend_margin.total_seconds(), remaining / 2)
        return Deadline(
            seconds=min(self.timeout.total_seconds(), room),
            clock=session.clock,
            is_async=self.is_async,
        )

    def wants_fresh_invocation(self, session: Session) -> bool:
        """An invocation that ran steps already and cannot give the attempt its timeout."""
        if self.timeout is None or session.steps_started == 0:
            return False
        room = session.remaining_time() - session.settings.suspend_margin.total_seconds()
        return room < self.timeout.total_seconds()
