"""A run's history as a JSON document: what `stepline runs export` writes and `stepline
check --history` (and the golden histories under tests/golden/) read.

    {"stepline_history": 1, "app": "shop", "run": {...}, "event": {...},
     "steps": [{"key": "00000", "id": "send-welcome", "kind": "run", ...}, ...]}

`run` is the stored `RunRecord` less its secret (which keys the ids of the events the
run sends and is never shown), `event` the trigger, `steps` every `StepRecord` with its
position. Reading it back gives the `LoadedRun` the engine would load from the table,
so a history replays the same from a file as from DynamoDB. The format only grows:
unknown fields are ignored, and `stepline_history` changes only if old files could not
be read as they were.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from engine.ids import StepKey
from engine.model import RunRecord, StepRecord
from engine.ports import LoadedRun, Revision
from sdk import Event

FORMAT = "stepline_history"
VERSION = 1


class HistoryFileError(ValueError):
    """A document that is not a Stepline history; the message says what is wrong."""


def history_document(loaded: LoadedRun, *, app: str | None = None) -> dict[str, Any]:
    """The JSON document of a loaded run (module docstring)."""
    steps = sorted(loaded.steps.items(), key=lambda item: str(item[0]))
    return {
        FORMAT: VERSION,
        "app": app,
        "run": loaded.run.model_dump(mode="json", exclude={"secret", "lease"}),
        "event": loaded.event.model_dump(mode="json"),
        "steps": [{"key": str(key), **record.model_dump(mode="json")} for key, record in steps],
    }


def loaded_from_document(document: Any, *, source: str = "history") -> LoadedRun:
    """The run a history document describes, as the store would load it."""
    if not isinstance(document, dict) or document.get(FORMAT) is None:
        raise HistoryFileError(
            f"{source}: not a Stepline history (no {FORMAT!r} field); write one with "
            "`stepline runs export RUN_ID`"
        )
    if document[FORMAT] != VERSION:
        raise HistoryFileError(
            f"{source}: history format {document[FORMAT]!r}; this version reads {VERSION}"
        )
    try:
        run = RunRecord.model_validate(document["run"])
        event = Event.model_validate(document["event"])
        steps: dict[StepKey, StepRecord] = {}
        for item in document.get("steps", []):
            key = StepKey.parse(item["key"])
            steps[key] = StepRecord.model_validate({**item, "key": key})
    except (KeyError, TypeError, ValueError, ValidationError) as error:
        raise HistoryFileError(f"{source}: not a valid Stepline history ({error})") from None
    revisions = {key: Revision(f"file-{index}") for index, key in enumerate(steps)}
    return LoadedRun(run=run, event=event, steps=steps, revisions=revisions)
