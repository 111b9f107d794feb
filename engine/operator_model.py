"""The records the operator's surface adds: a workflow's hold, and what the waits and
cancel handlers did with an event (the trigger's part is `engine.model.EventOutcome`).

Both are stored by the run store (`RunStore.get/put_workflow_control`,
`EventLog.record_effect`); engine/control.py and engine/events.py write them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class WorkflowControl(_Record):
    """An operator's hold on a workflow: while `paused`, its new runs start PAUSED."""

    workflow_id: str
    paused: bool = False
    reason: str | None = None
    at: datetime | None = None


class EventEffect(_Record):
    """What the waits or cancel handler did with one event, recorded only when it did
    something (so an event that touches nothing costs no write): the runs whose waits it
    resolved, or the runs it cancelled. Kept for the lookback window, for the dashboard."""

    event_id: str
    kind: Literal["resolved", "cancelled"]
    run_ids: tuple[str, ...]
    at: datetime
