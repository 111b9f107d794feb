"""Events: what starts runs, resolves waits and cancels runs.

On the wire an event is an EventBridge entry: `DetailType` is the name, `Detail` the data
(a JSON object) and the EventBridge event id the id. An event sent through Stepline with
an explicit id carries it in the reserved `$stepline` key of the detail, so that the id
survives EventBridge (which always assigns its own) and makes delivery idempotent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Event(BaseModel):
    """An event: a name, a JSON object of data, an id and a timestamp.

    `id` is filled in when the event is sent if you leave it empty. Set it yourself to
    make sending idempotent: an event id starts each workflow at most once. A received
    event's `ts` is when Stepline's queue received it; a time the sender claims is not
    trusted, so it is not kept.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=256)
    data: dict[str, Any] = Field(default_factory=dict)
    id: str = ""
    ts: datetime | None = None

    @field_validator("name")
    @classmethod
    def _name_is_printable(cls, name: str) -> str:
        if not name.strip() or not name.isprintable():
            raise ValueError("event name must be printable and not blank")
        return name
