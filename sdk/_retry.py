"""Retry policy for steps: exponential backoff with jitter, each delay a durable timer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sdk._duration import Duration, parse_duration
from sdk._errors import WorkflowDefinitionError


@dataclass(frozen=True, init=False)
class Retry:
    """How often a failing step is attempted, and how long to wait between attempts.

    The n-th retry waits `initial_delay * factor**(n-1)`, capped at `max_delay`, then
    scaled by a random factor in `[1 - jitter, 1 + jitter]` (and capped again). With
    `max_attempts=1` a step is never retried.
    """

    max_attempts: int
    initial_delay: timedelta
    max_delay: timedelta
    factor: float
    jitter: float

    def __init__(
        self,
        max_attempts: int = 4,
        initial_delay: Duration = "5s",
        max_delay: Duration = "1h",
        factor: float = 2.0,
        jitter: float = 0.2,
    ) -> None:
        if not isinstance(max_attempts, int) or max_attempts < 1:
            raise WorkflowDefinitionError(
                f"Retry(max_attempts={max_attempts!r}): use a whole number of at least 1"
            )
        if factor < 1:
            raise WorkflowDefinitionError(f"Retry(factor={factor!r}): use a factor of at least 1")
        if not 0 <= jitter <= 1:
            raise WorkflowDefinitionError(f"Retry(jitter={jitter!r}): use a value from 0 to 1")
        initial = parse_duration(initial_delay, what="Retry initial_delay")
        maximum = parse_duration(max_delay, what="Retry max_delay")
        if maximum < initial:
            raise WorkflowDefinitionError("Retry: max_delay must not be shorter than initial_delay")
        object.__setattr__(self, "max_attempts", max_attempts)
        object.__setattr__(self, "initial_delay", initial)
        object.__setattr__(self, "max_delay", maximum)
        object.__setattr__(self, "factor", float(factor))
        object.__setattr__(self, "jitter", float(jitter))

    def delay_before(self, attempt: int, unit_random: float) -> timedelta:
        """The wait before `attempt` (2 for the first retry), given a random value in [0, 1)."""
        exponent = max(attempt - 2, 0)
        base = min(
            self.initial_delay.total_seconds() * self.factor**exponent,
            self.max_delay.total_seconds(),
        )
        scaled = base * (1 - self.jitter + 2 * self.jitter * unit_random)
        return timedelta(seconds=min(scaled, self.max_delay.total_seconds()))
