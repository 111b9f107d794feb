"""What one invocation of a workflow comes to: the `Outcome` the Runner applies.

The replay core (engine/interpreter.py) returns exactly one of these and writes no run
transition itself; `Runner._apply` turns it into the run's next state with one
conditional write, then performs the side effects.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from engine.ids import StepKey
from engine.model import ErrorInfo

PendingKind = Literal["sleep", "retry", "wait", "invoke", "continue"]


@dataclass(frozen=True)
class Pending:
    """Something a suspended run waits for: the step that suspended, and until when."""

    step_key: StepKey
    step_id: str
    kind: PendingKind
    wake_at: datetime | None

    @property
    def waiting(self) -> bool:
        """Waiting on something outside the run (an event, a child), not only on time."""
        return self.kind in ("wait", "invoke")


@dataclass(frozen=True)
class Completed:
    output: Any


@dataclass(frozen=True)
class Failed:
    error: ErrorInfo


@dataclass(frozen=True)
class Suspended:
    pending: tuple[Pending, ...]


@dataclass(frozen=True)
class ContinuedAsNew:
    """The run ends; a fresh run of the same workflow starts with `data` as its event data."""

    data: dict[str, Any]


@dataclass(frozen=True)
class Abandoned:
    """Another invocation owns the run now; this one wrote nothing more."""

    reason: str


Outcome = Completed | Failed | Suspended | ContinuedAsNew | Abandoned
