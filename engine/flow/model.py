"""What a run carries about its flow controls (`RunRecord.flow`), and why it waits.

`RunFlow` is written with the run (inside its item's JSON, so a run without controls
stores nothing more): the keys its controls were evaluated to when it was created, the
deadlines of `Timeouts`, the throttle start it reserved, and `waiting`, which says why a
QUEUED run has not started (`runs show`). Keys are evaluated once, from the triggering
event; the state behind each key lives in flow items (engine/flow/ports.py).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class FlowKey(_Record):
    """One control's key for one run: where its state lives, and what it is for people
    (`shown`: the expression and its value, or "" for a control without a key).

    `ref` names the control it belongs to (kind, scope and key expression), so that a
    key stored by an older definition of the workflow is not used for a changed one.
    """

    ref: str
    space: str
    shown: str


class Waiting(_Record):
    """Why a QUEUED run has not started: the control, its key, and until when if known."""

    control: str
    key: str
    since: datetime
    until: datetime | None = None
    detail: str = ""

    def describe(self) -> str:
        """For `runs show`: the control, its key, and when it starts if known."""
        text = f"{self.control}: {self.detail}" if self.detail else self.control
        if self.key:
            text += f" (key {self.key})"
        if self.until is not None:
            text += f"; starts at {self.until:%Y-%m-%d %H:%M:%S}"
        return text + f"; waiting since {self.since:%Y-%m-%d %H:%M:%S}"


class RunFlow(_Record):
    """A run's flow-control state; see the module docstring."""

    concurrency: tuple[FlowKey, ...] = ()
    throttle: FlowKey | None = None
    singleton: FlowKey | None = None
    debounce: FlowKey | None = None
    batch: FlowKey | None = None
    # Seconds ahead of runs queued before it (positive), or of delay (negative).
    priority: int = 0
    # A negative priority: the run starts no earlier than this.
    not_before: datetime | None = None
    # Timeouts: cancelled if not started by `start_by`, or not finished by `finish_by`
    # (set when it first gets past its controls).
    start_by: datetime | None = None
    finish_by: datetime | None = None
    # The start its throttle reserved for it (it starts at or after this).
    throttled_until: datetime | None = None
    waiting: Waiting | None = None


def for_key(shown: str) -> str:
    """The words " for key <expression = value>", or nothing for a control without a key."""
    return f" for key {shown}" if shown else ""
